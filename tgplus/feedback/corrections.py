"""Editors' answers as training data: they override a source's genres and add new films.

An answer is matched to a film by the data layer's identity keys
(`tgplus.data.table.identity_keys`; for an answer, which has no TMDB or IMDb
id, that is its normalised description). Where several editors answered for
the same film the latest answer wins. A matched film keeps its ids, title
and text (so it stays on the same side of the split) and takes the editor's
genres as complete labels: the editor saw every genre. A film no source holds
is added.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.engine import make_url

from tgplus.data import Movie
from tgplus.data.genres import Taxonomy
from tgplus.data.table import identity_keys
from tgplus.errors import DataError
from tgplus.feedback.store import (
    FeedbackRepository,
    FeedbackStore,
    engine_url,
    head_revision,
    missing_sqlite_file,
)

SETTING = "--feedback"


@dataclass(frozen=True)
class Corrections:
    """The latest answer per film, as movies, and what was left out."""

    movies: tuple[Movie, ...]
    source: str
    rows: int
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Corrected:
    """Source movies with the editors' answers applied, and the counts training records."""

    movies: tuple[Movie, ...]
    overridden: int
    added: int

    def metadata(self, corrections: Corrections) -> dict[str, Any]:
        return {
            "database": corrections.source,
            "rows": corrections.rows,
            "films": len(corrections.movies),
            "overridden": self.overridden,
            "added": self.added,
            "skipped": dict(corrections.skipped),
        }


def read_corrections(url: str, taxonomy: Taxonomy) -> Corrections:
    """Every answer in the database at `url`, latest first, one per film, as movies.

    The editor's genres are spelled as `taxonomy` spells them; an answer with
    none of them is skipped and counted. `url` is `tgplus train --feedback`'s:
    the database must exist at this tgplus's schema; it is read, never created
    or migrated.
    """
    if (file := missing_sqlite_file(url, SETTING)) is not None:
        shown = make_url(engine_url(url, SETTING)).render_as_string(hide_password=True)
        raise DataError(
            f"{SETTING} {shown}: no database at {file}; give the URL of an existing "
            "feedback database"
        )
    store = FeedbackStore(url, setting=SETTING)
    try:
        if (revision := store.revision()) != (head := head_revision()):
            raise DataError(
                f"{SETTING} {store.shown_url}: the feedback schema is at {revision or 'none'}, "
                f"not {head}; run `tgplus db upgrade --database` with this URL first"
            )
        with store.session() as session:
            rows = FeedbackRepository(store, session).feedback(newest_first=True)
    finally:
        store.dispose()
    source = f"feedback:{store.shown_url}"
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    movies: list[Movie] = []
    for row in rows:
        genres = tuple(dict.fromkeys(g for g in map(taxonomy.lookup, row.genres) if g))
        movie = Movie(None, row.title, row.description, genres, "", source, sources=(source,))
        keys = identity_keys(movie)
        if not genres:
            skipped["no genre in the taxonomy"] += 1
        elif any(key in seen for key in keys):
            skipped["older answer for the same film"] += 1
        else:
            movies.append(movie)
        seen.update(keys)
    return Corrections(tuple(movies), source, len(rows), skipped)


def apply_corrections(movies: Sequence[Movie], corrections: Corrections) -> Corrected:
    """`movies` with the editors' genres where they answered, then the films only they know."""
    by_key = {key: c for c in corrections.movies for key in identity_keys(c)}
    used: set[int] = set()
    result: list[Movie] = []
    overridden = 0
    for movie in movies:
        answer = next((by_key[k] for k in identity_keys(movie) if k in by_key), None)
        if answer is None:
            result.append(movie)
            continue
        used.add(id(answer))
        overridden += 1
        sources = (*(movie.sources or (movie.source,)), corrections.source)
        result.append(replace(movie, genres=answer.genres, known=None, sources=sources))
    added = [c for c in corrections.movies if id(c) not in used]
    return Corrected((*result, *added), overridden, len(added))
