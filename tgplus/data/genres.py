"""Genre vocabularies: the model's taxonomy, and how each source's names map onto it.

A source writes genres in its own vocabulary (TMDB's "Science Fiction",
JustWatch's "scifi", a user's "Sci-Fi/Fantasy"). A mapping turns every source
name into zero, one or several genres of the taxonomy; names that map to
nothing are counted, never learned. Validating every name this way is also
what keeps the production companies of broken movies_metadata.csv rows
("Carousel Productions", "Aniplex") out of a model.

The taxonomy is TMDB's 20 genres unless the user declares their own list in a
file (`load_taxonomy`). A user mapping file (`load_mapping`) adds to or
overrides the built-in mappings:

    # source,target   (one line per target; a blank target drops the name)
    source,target
    Sci-Fi/Fantasy,Science Fiction
    Sci-Fi/Fantasy,Fantasy
    Stand-Up,Comedy
    Anime,
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tgplus.errors import DataError

TMDB_GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Foreign",
    "History",
    "Horror",
    "Music",
    "Mystery",
    "Romance",
    "Science Fiction",
    "TV Movie",
    "Thriller",
    "War",
    "Western",
)

# Spellings of TMDB genres seen in other movie tables (any format may use them).
TMDB_ALIASES: dict[str, tuple[str, ...]] = {
    "sci-fi": ("Science Fiction",),
    "scifi": ("Science Fiction",),
    "science-fiction": ("Science Fiction",),
    "tv film": ("TV Movie",),
    "tv-movie": ("TV Movie",),
    "musical": ("Music",),
    "historical": ("History",),
    "documentary film": ("Documentary",),
    "animated": ("Animation",),
}

# JustWatch's lower-case names (every name its catalogues use). `european` is a
# production region, `sport` and `reality` have no TMDB counterpart: they map to
# nothing. JustWatch has no Adventure, Mystery, TV Movie or Foreign at all, which
# is why its movies carry a partial-label mask (`expressible_genres`).
JUSTWATCH_NAMES: dict[str, tuple[str, ...]] = {
    "action": ("Action",),
    "animation": ("Animation",),
    "comedy": ("Comedy",),
    "crime": ("Crime",),
    "documentation": ("Documentary",),
    "drama": ("Drama",),
    "european": (),
    "family": ("Family",),
    "fantasy": ("Fantasy",),
    "history": ("History",),
    "horror": ("Horror",),
    "music": ("Music",),
    "reality": (),
    "romance": ("Romance",),
    "scifi": ("Science Fiction",),
    "sport": (),
    "thriller": ("Thriller",),
    "war": ("War",),
    "western": ("Western",),
}

_MAX_GENRES = 1000  # a taxonomy or mapping file longer than this is not one


def genre_key(name: str) -> str:
    """The form names are compared in: white space folded, lower case."""
    return " ".join(name.split()).lower()


@dataclass(frozen=True)
class Taxonomy:
    """The genres a model may learn, and where the list came from."""

    genres: tuple[str, ...]
    origin: str = "tmdb"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {genre_key(g): g for g in self.genres})

    def lookup(self, name: str) -> str | None:
        """The taxonomy's spelling of `name` (any case and spacing), or None."""
        by_key: dict[str, str] = self.__dict__["_by_key"]
        return by_key.get(genre_key(name))

    @property
    def is_default(self) -> bool:
        return self.genres == TMDB_GENRES


DEFAULT_TAXONOMY = Taxonomy(TMDB_GENRES)


def load_taxonomy(path: Path) -> Taxonomy:
    """A taxonomy file: one genre per line; blank lines and `#` comments are ignored."""
    lines = _read_lines(path, "taxonomy")
    genres: list[str] = []
    seen: dict[str, int] = {}
    for number, text in lines:
        name = " ".join(text.split())
        if "," in name:
            raise DataError(
                f"{path}: line {number}: {name!r} holds a comma; write one genre per line"
            )
        if genre_key(name) in seen:
            raise DataError(
                f"{path}: line {number}: genre {name!r} repeats line {seen[genre_key(name)]}; "
                "list each genre once"
            )
        seen[genre_key(name)] = number
        genres.append(name)
    if len(genres) < 2:
        raise DataError(f"{path}: declares {len(genres)} genre(s); a taxonomy needs at least two")
    return Taxonomy(tuple(genres), str(path))


@dataclass(frozen=True)
class GenreMapping:
    """A user's mapping: source name (compared by `genre_key`) → genres of the taxonomy."""

    targets: Mapping[str, tuple[str, ...]]
    origin: str


def load_mapping(path: Path, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> GenreMapping:
    """A mapping file: CSV lines `source,target`, an optional `source,target` header,
    `#` comments. Several lines may share a source (several targets); a blank
    target maps the name to nothing. A malformed line, or a target outside the
    taxonomy, raises DataError naming the file and line."""
    targets: dict[str, list[str]] = {}
    for number, text in _read_lines(path, "mapping"):
        fields = next(csv.reader([text]), [])
        if len(fields) != 2:
            raise DataError(
                f"{path}: line {number}: expected two fields 'source,target', found "
                f"{len(fields)}; quote names that contain a comma"
            )
        source, target = (" ".join(f.split()) for f in fields)
        if not source:
            raise DataError(f"{path}: line {number}: the source name is empty")
        if number == 1 and (genre_key(source), genre_key(target)) == ("source", "target"):
            continue  # the header
        chosen = targets.setdefault(genre_key(source), [])
        if not target:
            continue
        genre = taxonomy.lookup(target)
        if genre is None:
            shown = ", ".join(taxonomy.genres[:25])
            raise DataError(
                f"{path}: line {number}: target {target!r} is not a genre of the taxonomy "
                f"({shown}); fix the name or leave the target blank to drop {source!r}"
            )
        if genre not in chosen:
            chosen.append(genre)
    if not targets:
        raise DataError(f"{path}: no mapping lines; write lines such as 'Sci-Fi,Science Fiction'")
    return GenreMapping({k: tuple(v) for k, v in targets.items()}, str(path))


def _read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """The non-blank, non-comment lines of a small UTF-8 text file, numbered from 1."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what} file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a {what} file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8; save the {what} file as UTF-8") from None
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(lines) > _MAX_GENRES:
        raise DataError(f"{path}: {len(lines)} lines; a {what} file holds at most {_MAX_GENRES}")
    return lines


@dataclass
class GenreResolver:
    """Maps source names onto the taxonomy: the user's mapping first, then the
    taxonomy's own names, then the built-in vocabulary of the source's format."""

    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    mapping: GenreMapping | None = None
    _cache: dict[tuple[str, bool], tuple[str, ...] | None] = field(default_factory=dict)

    def resolve(self, name: str, *, justwatch: bool = False) -> tuple[str, ...] | None:
        """The taxonomy genres `name` stands for; () when it maps to nothing,
        None when no mapping knows it."""
        cache_key = (name, justwatch)
        if cache_key not in self._cache:
            self._cache[cache_key] = self._resolve(genre_key(name), justwatch)
        return self._cache[cache_key]

    def _resolve(self, key: str, justwatch: bool) -> tuple[str, ...] | None:
        if self.mapping is not None and key in self.mapping.targets:
            return self.mapping.targets[key]
        direct = self.taxonomy.lookup(key)
        if direct is not None:
            return (direct,)
        builtin = JUSTWATCH_NAMES.get(key) if justwatch else None
        if builtin is None:
            builtin = TMDB_ALIASES.get(key)
        if builtin is None:
            return None
        # Built-in targets are TMDB names; a custom taxonomy keeps those it also has.
        return tuple(g for g in (self.taxonomy.lookup(t) for t in builtin) if g is not None)

    def expressible(self, names: Iterable[str], *, justwatch: bool = False) -> frozenset[str]:
        """Every genre that some name of `names` maps to: what a vocabulary can say."""
        return frozenset(
            genre for name in names for genre in (self.resolve(name, justwatch=justwatch) or ())
        )


_DEFAULT_RESOLVER = GenreResolver()


def canonical_genre(name: str) -> str | None:
    """The TMDB spelling of a genre name, or None when it is not one (default mapping)."""
    found = _DEFAULT_RESOLVER.resolve(name)
    return found[0] if found else None
