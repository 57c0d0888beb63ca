"""Turn raw rows from any number of files into one clean table of movies.

Nothing is dropped silently: every row read is either kept or counted under
exactly one `SkipReason`, the first that applies, in the order the enum lists
them.

Genre names go through a `GenreResolver` (the taxonomy, a user's mapping file,
the built-in vocabularies); names that map to nothing are counted per file.

Files are merged in the order given. A movie seen twice (same TMDB id, same
IMDb id, or same normalised overview) is one movie: the first occurrence keeps
its id, title and text, takes the ids it lacked from the later copies, and its
genres become the union of all copies' genres (catalogues disagree, and each
copy's list is one service's partial view). The later rows are counted as
`duplicate`; `FileReport.merged_new_genres` counts those that added a genre.

Each file also says which genres its vocabulary can express (JustWatch has no
Adventure, for example); a movie's `known` genres are the union over the files
that hold it, so training and evaluation can treat a genre its sources cannot
name as unknown rather than absent.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from tgplus.data.genres import (
    DEFAULT_TAXONOMY,
    JUSTWATCH_NAMES,
    TMDB_GENRES,
    GenreMapping,
    GenreResolver,
    Taxonomy,
)
from tgplus.data.sources import RawRow, SourceFormat, detect_format, expand_paths, read_rows
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
_IMDB_ID = re.compile(r"tt\d{5,10}")

# The names each format's vocabulary has, whether or not a given file uses them all.
_DECLARED_NAMES: dict[SourceFormat, tuple[str, ...]] = {
    SourceFormat.MOVIES_METADATA: TMDB_GENRES,
    SourceFormat.TMDB_TOP10K: TMDB_GENRES,
    SourceFormat.JUSTWATCH: tuple(JUSTWATCH_NAMES),
}


class SkipReason(str, Enum):
    """Why a row was not kept; a row gets the first reason that applies."""

    MALFORMED_ROW = "malformed row"
    SHOW = "show, not a movie"
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
    """The file the movie was first read from."""
    imdb_id: str | None = None
    sources: tuple[str, ...] = ()
    """Every file that holds the movie (empty: just `source`)."""
    known: frozenset[str] | None = None
    """The genres its sources can express; None: every genre (no partial labels)."""

    def can_say(self, genre: str) -> bool:
        """Whether the movie's sources could have given it `genre` (a partial-label mask)."""
        return self.known is None or genre in self.known

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
    genre_names: Counter[str] = field(default_factory=Counter)
    """How often each source genre name occurs (rows that reached the genre check)."""
    mapped_to: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """What each source name maps to; () for names that map to nothing."""
    expressible: frozenset[str] = frozenset()
    """The taxonomy genres this file's vocabulary can express."""
    merged_new_genres: int = 0
    """Duplicate rows whose genres were added to the earlier copy's."""


@dataclass
class LoadReport:
    """What loading did with every file: rows read = rows kept + rows skipped."""

    files: list[FileReport] = field(default_factory=list)
    rejected_genre_names: Counter[str] = field(default_factory=Counter)
    languages: frozenset[str] | None = None
    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    mapping: str | None = None
    """The user mapping file, if any."""

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
    if source_format is SourceFormat.JUSTWATCH:
        return None  # JustWatch's own ids (tm123) are not TMDB ids
    if text.isdigit() and int(text) > 0:
        return int(text)
    # A user's own table may omit ids or hold its catalogue's own (`s1`, `tt0075314`): the
    # row is still a movie, only not known by a TMDB id. The TMDB exports always have one.
    return None if _generic(source_format) else SkipReason.BAD_ID


def _generic(source_format: SourceFormat) -> bool:
    return source_format in (SourceFormat.CSV, SourceFormat.JSONL)


def _parse_imdb(text: str) -> str | None:
    text = text.strip().lower()
    return text if _IMDB_ID.fullmatch(text) else None


def identity_keys(movie: Movie) -> list[str]:
    """The keys under which two rows are the same film: TMDB id, IMDb id, normalised overview."""
    keys = [f"text:{normalise_text(movie.overview)}"]
    if movie.imdb_id is not None:
        keys.insert(0, f"imdb:{movie.imdb_id}")
    if movie.id is not None:
        keys.insert(0, f"tmdb:{movie.id}")
    return keys


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(genre for genre in second if genre not in first)


class _Merger:
    """Applies the row rules and merges what it keeps, across files."""

    def __init__(
        self,
        languages: frozenset[str] | None,
        require_genres: bool,
        deduplicate: bool,
        resolver: GenreResolver,
        keep_shows: bool,
    ) -> None:
        self.languages = languages
        self.require_genres = require_genres
        self.deduplicate = deduplicate
        self.resolver = resolver
        self.keep_shows = keep_shows
        self.movies: list[Movie] = []
        self.index: dict[str, int] = {}
        self.rejected_names: Counter[str] = Counter()

    def judge(
        self, row: RawRow, source_format: SourceFormat, source: str, report: FileReport
    ) -> SkipReason | None:
        """Keep or merge `row` (None), or say why it is skipped."""
        if row.malformed:
            return SkipReason.MALFORMED_ROW
        if row.show and not self.keep_shows:
            return SkipReason.SHOW
        movie_id = _parse_id(row.id, source_format)
        justwatch = source_format is SourceFormat.JUSTWATCH
        if isinstance(movie_id, SkipReason):
            self._map_names(row.genres, report, justwatch)
            return movie_id
        if row.genres is None and self.require_genres:
            return SkipReason.UNPARSABLE_GENRES
        if self.languages is not None and row.language and row.language not in self.languages:
            return SkipReason.LANGUAGE
        overview = row.overview.strip()
        if is_placeholder(overview):
            return SkipReason.NO_OVERVIEW
        genres = self._map_names(row.genres, report, justwatch)
        if self.require_genres and not genres:
            return SkipReason.UNKNOWN_GENRES if row.genres else SkipReason.NO_GENRE
        movie = Movie(
            movie_id,
            row.title,
            overview,
            genres,
            row.language,
            source,
            # an IMDb id in the id column of a user's table still finds the film elsewhere
            imdb_id=_parse_imdb(row.imdb_id)
            or (_parse_imdb(row.id) if _generic(source_format) else None),
            sources=(source,),
        )
        if not self.deduplicate:
            self.movies.append(movie)
            return None
        keys = identity_keys(movie)
        earlier = next((self.index[key] for key in keys if key in self.index), None)
        if earlier is None:
            self.movies.append(movie)
            earlier = len(self.movies) - 1
            verdict = None
        else:
            first = self.movies[earlier]
            merged = Movie(
                first.id if first.id is not None else movie.id,
                first.title,
                first.overview,
                _union(first.genres, movie.genres),
                first.language,
                first.source,
                imdb_id=first.imdb_id if first.imdb_id is not None else movie.imdb_id,
                sources=_union(first.sources, movie.sources),
            )
            if merged.genres != first.genres:
                report.merged_new_genres += 1
            self.movies[earlier] = merged
            keys = identity_keys(merged)
            verdict = SkipReason.DUPLICATE
        for key in keys:
            self.index.setdefault(key, earlier)
        return verdict

    def _map_names(
        self, names: tuple[str, ...] | None, report: FileReport, justwatch: bool
    ) -> tuple[str, ...]:
        """The taxonomy genres `names` map to, in order, without repeats; count every name."""
        kept: list[str] = []
        for name in names or ():
            targets = self.resolver.resolve(name, justwatch=justwatch) or ()
            report.genre_names[name] += 1
            report.mapped_to.setdefault(name, targets)
            if not targets:
                self.rejected_names[name] += 1
            kept += [genre for genre in targets if genre not in kept]
        return tuple(kept)


def with_known_genres(movies: Iterable[Movie], report: LoadReport) -> tuple[Movie, ...]:
    """`movies` with `known` set from their files' vocabularies (None where that is all)."""
    everything = frozenset(report.taxonomy.genres)
    by_file = {file.path: file.expressible for file in report.files}
    result = []
    for movie in movies:
        known = frozenset().union(*(by_file.get(s, everything) for s in movie.sources or ()))
        result.append(replace(movie, known=None if known >= everything else known))
    return tuple(result)


def load_movies(
    paths: Sequence[Path],
    *,
    source_format: SourceFormat = SourceFormat.AUTO,
    languages: frozenset[str] | None = frozenset({"en"}),
    require_genres: bool = True,
    deduplicate: bool = True,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
    mapping: GenreMapping | None = None,
    keep_shows: bool = False,
) -> MovieTable:
    """Read, validate, map, merge and deduplicate movies from every file in `paths`.

    `languages` None keeps every language; rows with no language pass any
    filter. Scoring a catalogue sets `require_genres` False (movies without
    genres are kept) and `deduplicate` False (every row gets a prediction).
    Genre names are mapped onto `taxonomy` (`mapping` first, then built-in
    vocabularies). JustWatch shows are skipped unless `keep_shows`.
    """
    if not paths:
        raise DataError("no input files; pass at least one CSV or JSON Lines file")
    paths = expand_paths(paths)
    resolver = GenreResolver(taxonomy, mapping)
    merger = _Merger(languages, require_genres, deduplicate, resolver, keep_shows)
    report = LoadReport(
        languages=languages,
        taxonomy=taxonomy,
        mapping=mapping.origin if mapping is not None else None,
    )
    for path in paths:
        file_format = detect_format(path) if source_format is SourceFormat.AUTO else source_format
        file_report = FileReport(str(path), file_format.value)
        report.files.append(file_report)
        for row in read_rows(path, file_format, require_genres=require_genres):
            file_report.rows_read += 1
            verdict = merger.judge(row, file_format, str(path), file_report)
            if verdict is None:
                file_report.rows_kept += 1
            else:
                file_report.skipped[verdict.value] += 1
        vocabulary = (*_DECLARED_NAMES.get(file_format, ()), *file_report.genre_names)
        file_report.expressible = resolver.expressible(
            vocabulary, justwatch=file_format is SourceFormat.JUSTWATCH
        )
    report.rejected_genre_names = merger.rejected_names
    return MovieTable(with_known_genres(merger.movies, report), report)


@dataclass(frozen=True)
class LoadSettings:
    """How files are read: the options `load_movies` takes besides the paths.

    Training records them in the model's metadata so evaluation reads files
    the same way.
    """

    source_format: SourceFormat = SourceFormat.AUTO
    languages: frozenset[str] | None = frozenset({"en"})
    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    mapping: GenreMapping | None = None
    keep_shows: bool = False

    def load(self, paths: Sequence[Path], **options: bool) -> MovieTable:
        """`load_movies` with these settings (`options`: require_genres, deduplicate)."""
        return load_movies(
            paths,
            source_format=self.source_format,
            languages=self.languages,
            taxonomy=self.taxonomy,
            mapping=self.mapping,
            keep_shows=self.keep_shows,
            **options,
        )

    def to_metadata(self) -> dict[str, Any]:
        return {
            "format": self.source_format.value,
            "language_filter": sorted(self.languages) if self.languages is not None else "all",
            "taxonomy": {"origin": self.taxonomy.origin, "genres": list(self.taxonomy.genres)},
            "mapping": (
                {"origin": self.mapping.origin, "targets": dict(self.mapping.targets)}
                if self.mapping is not None
                else None
            ),
            "keep_shows": self.keep_shows,
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> LoadSettings:
        """The settings a model was trained with (defaults for what it does not record)."""
        languages = metadata.get("language_filter", ["en"])
        recorded = metadata.get("loading", {})
        taxonomy = recorded.get("taxonomy")
        mapping = recorded.get("mapping")
        try:
            source_format = SourceFormat(recorded.get("format", "auto"))
        except ValueError:
            source_format = SourceFormat.AUTO
        return cls(
            source_format=source_format,
            languages=None if languages == "all" else frozenset(languages),
            taxonomy=(
                Taxonomy(tuple(taxonomy["genres"]), str(taxonomy["origin"]))
                if taxonomy
                else DEFAULT_TAXONOMY
            ),
            mapping=(
                GenreMapping(
                    {k: tuple(v) for k, v in mapping["targets"].items()}, str(mapping["origin"])
                )
                if mapping
                else None
            ),
            keep_shows=bool(recorded.get("keep_shows", False)),
        )


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
