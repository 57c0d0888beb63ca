"""Turn raw rows from any number of files into one clean table of movies.

Nothing is dropped silently: every row read is either kept or counted under
exactly one `SkipReason`, the first that applies, in the order the enum lists
them. Files are merged in the order given and a movie seen twice (same TMDB
id, or same overview text) keeps its first occurrence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from tgplus.data.genres import canonical_genre
from tgplus.data.sources import RawRow, SourceFormat, detect_format, read_rows
from tgplus.errors import DataError

# Overviews that stand in for a missing one (compared lower-cased, without
# trailing dots or spaces). TMDB's own placeholder is "No overview found.".
PLACEHOLDER_OVERVIEWS = frozenset(
    {
        "no overview found",
        "no overview",
        "no overview available",
        "no movie overview available",
        "overview not available",
        "no description available",
        "no description",
        "not available",
        "n/a",
        "na",
        "none",
        "null",
        "tbd",
        "tba",
        "coming soon",
        "-",
        "",
    }
)

_SPACE = re.compile(r"\s+")


class SkipReason(str, Enum):
    """Why a row was not kept; a row gets the first reason that applies."""

    MALFORMED_ROW = "malformed row"
    BAD_ID = "bad id"
    UNPARSABLE_GENRES = "unparsable genres"
    LANGUAGE = "language"
    NO_OVERVIEW = "no overview"
    UNKNOWN_GENRES = "unknown genre names"
    NO_GENRE = "no genre"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Movie:
    """One movie with a usable description. `id` is the TMDB id when known."""

    id: int | None
    title: str
    overview: str
    genres: tuple[str, ...]
    language: str
    source: str

    @property
    def text(self) -> str:
        """What the models read: the title (when known) and the overview."""
        return model_text(self.overview, self.title)


def model_text(description: str, title: str = "") -> str:
    """Join title and description the way every model was trained to read them."""
    description = description.strip()
    title = title.strip()
    return f"{title}. {description}" if title else description


def normalise_text(text: str) -> str:
    """Lower-case with runs of white space folded: the form used to spot duplicates."""
    return _SPACE.sub(" ", text).strip().lower()


def is_placeholder(overview: str) -> bool:
    return normalise_text(overview).rstrip(". ") in PLACEHOLDER_OVERVIEWS


@dataclass
class FileReport:
    """What loading did with one file."""

    path: str
    format: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class LoadReport:
    """What loading did with every file: rows read = rows kept + rows skipped."""

    files: list[FileReport] = field(default_factory=list)
    rejected_genre_names: Counter[str] = field(default_factory=Counter)
    languages: frozenset[str] | None = None

    @property
    def rows_read(self) -> int:
        return sum(report.rows_read for report in self.files)

    @property
    def rows_kept(self) -> int:
        return sum(report.rows_kept for report in self.files)

    @property
    def skipped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for report in self.files:
            total.update(report.skipped)
        return total

    def describe(self) -> str:
        """One line for logs and error messages."""
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.most_common())
        return f"{self.rows_read} rows read, {self.rows_kept} kept, skipped: {reasons or 'none'}"


@dataclass(frozen=True)
class MovieTable:
    """The merged movies and the report of how they were obtained."""

    movies: tuple[Movie, ...]
    report: LoadReport


def parse_languages(value: str) -> frozenset[str] | None:
    """`en`, `en,fr` or `all` (None: keep every language)."""
    codes = {code.strip().lower() for code in value.split(",") if code.strip()}
    if not codes:
        raise DataError("--language is empty; give a code such as 'en', a list 'en,fr', or 'all'")
    return None if "all" in codes else frozenset(codes)


def _parse_id(text: str, source_format: SourceFormat) -> int | SkipReason | None:
    if not text:
        # The generic formats may omit ids; the TMDB exports always have them.
        generic = source_format in (SourceFormat.CSV, SourceFormat.JSONL)
        return None if generic else SkipReason.BAD_ID
    if text.isdigit() and int(text) > 0:
        return int(text)
    return SkipReason.BAD_ID


class _Merger:
    """Applies the row rules and remembers what it has kept, across files."""

    def __init__(
        self, languages: frozenset[str] | None, require_genres: bool, deduplicate: bool
    ) -> None:
        self.languages = languages
        self.require_genres = require_genres
        self.deduplicate = deduplicate
        self.seen_ids: set[int] = set()
        self.seen_overviews: set[str] = set()
        self.rejected_names: Counter[str] = Counter()

    def judge(self, row: RawRow, source_format: SourceFormat, source: str) -> Movie | SkipReason:
        if row.malformed:
            return SkipReason.MALFORMED_ROW
        movie_id = _parse_id(row.id, source_format)
        if isinstance(movie_id, SkipReason):
            self._note_rejected(row.genres)
            return movie_id
        if row.genres is None and self.require_genres:
            return SkipReason.UNPARSABLE_GENRES
        if self.languages is not None and row.language and row.language not in self.languages:
            return SkipReason.LANGUAGE
        overview = row.overview.strip()
        if is_placeholder(overview):
            return SkipReason.NO_OVERVIEW
        genres = self._note_rejected(row.genres)
        if self.require_genres and not genres:
            return SkipReason.UNKNOWN_GENRES if row.genres else SkipReason.NO_GENRE
        if not self.deduplicate:
            return Movie(movie_id, row.title, overview, genres, row.language, source)
        key = normalise_text(overview)
        if (movie_id is not None and movie_id in self.seen_ids) or key in self.seen_overviews:
            return SkipReason.DUPLICATE
        if movie_id is not None:
            self.seen_ids.add(movie_id)
        self.seen_overviews.add(key)
        return Movie(movie_id, row.title, overview, genres, row.language, source)

    def _note_rejected(self, names: tuple[str, ...] | None) -> tuple[str, ...]:
        """The valid genres among `names`, in order, without repeats; count the others."""
        kept: list[str] = []
        for name in names or ():
            genre = canonical_genre(name)
            if genre is None:
                self.rejected_names[name] += 1
            elif genre not in kept:
                kept.append(genre)
        return tuple(kept)


def load_movies(
    paths: Sequence[Path],
    *,
    source_format: SourceFormat = SourceFormat.AUTO,
    languages: frozenset[str] | None = frozenset({"en"}),
    require_genres: bool = True,
    deduplicate: bool = True,
) -> MovieTable:
    """Read, validate, merge and deduplicate movies from every file in `paths`.

    `languages` None keeps every language; rows with no language pass any
    filter. Scoring a catalogue sets `require_genres` False (movies without
    genres are kept) and `deduplicate` False (every row gets a prediction).
    """
    if not paths:
        raise DataError("no input files; pass at least one CSV or JSON Lines file")
    merger = _Merger(languages, require_genres, deduplicate)
    report = LoadReport(languages=languages)
    movies: list[Movie] = []
    for path in paths:
        file_format = detect_format(path) if source_format is SourceFormat.AUTO else source_format
        file_report = FileReport(str(path), file_format.value)
        report.files.append(file_report)
        for row in read_rows(path, file_format, require_genres=require_genres):
            file_report.rows_read += 1
            verdict = merger.judge(row, file_format, str(path))
            if isinstance(verdict, SkipReason):
                file_report.skipped[verdict.value] += 1
            else:
                file_report.rows_kept += 1
                movies.append(verdict)
    report.rejected_genre_names = merger.rejected_names
    return MovieTable(tuple(movies), report)


def require_movies(table: MovieTable, purpose: str) -> tuple[Movie, ...]:
    """The movies of `table`, or a DataError saying why there are none."""
    if not table.movies:
        files = ", ".join(report.path for report in table.report.files)
        raise DataError(f"{files}: no usable movies to {purpose} ({table.report.describe()})")
    return table.movies


def genre_counts(movies: Iterable[Movie]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for movie in movies:
        counts.update(movie.genres)
    return counts
