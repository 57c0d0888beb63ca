"""Score rows of a catalogue: the one rule every batch path shares.

The streaming scorer (`tgplus.batch`), the Dask engine (`tgplus.distributed`)
and `score_frame` for pandas all call `score_texts`, so a row gets the same
genres whichever engine scored it. A row that cannot be scored (no text, or
text that is not a string) keeps its place with a `skip_reason` instead of
disappearing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tgplus.data.table import is_placeholder
from tgplus.errors import InputError
from tgplus.models import Predictor, load_predictor

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

GENRE = "predicted_genre"
"""Output column: the top-scored genre."""
GENRES = "predicted_genres"
"""Output column: every genre at or above its threshold, best first."""
SKIP_REASON = "skip_reason"
"""Output column: why a row was not scored (empty when it was)."""
CONFIDENCE = "confidence"
"""Output column: the calibrated score of the top genre (empty when not scored)."""
SCORE_PREFIX = "score_"
"""Output columns `score_<Genre>` (with `--scores`): the probability of each genre."""

TEXT_COLUMNS = ("overview", "description")
"""Text columns looked for, in order, when the caller names none."""
TITLE_COLUMN = "title"
ID_COLUMN = "id"

MODEL_BATCH = 16_384
"""Most texts handed to the model at once: big enough for its batch speed, small enough
that its feature matrices stay in cache-friendly sizes and memory stays flat."""

NO_TEXT = "no text"
NOT_TEXT = "text is not a string"


@dataclass(frozen=True)
class Columns:
    """Which input columns to read: the text, an optional title, and the ones to keep."""

    text: str
    title: str | None
    keep: tuple[str, ...]

    @property
    def needed(self) -> tuple[str, ...]:
        """Every column to read, each once, kept ones first."""
        names = [*self.keep, self.text, *([self.title] if self.title else [])]
        return tuple(dict.fromkeys(names))


def choose_columns(
    available: Sequence[str],
    source: str,
    *,
    text: str | None = None,
    title: str | None = None,
    keep: Sequence[str] | None = None,
) -> Columns:
    """Resolve the caller's column choices against a file's columns, or say what it has.

    Defaults: text is `overview` or `description`, title is `title` when
    present, kept columns are `id` and `title` when present. `title=""`
    scores the text alone.
    """
    present = list(available)
    shown = ", ".join(present[:30]) + (", ..." if len(present) > 30 else "") or "none"
    if text is None:
        text = next((name for name in TEXT_COLUMNS if name in present), None)
        if text is None:
            raise InputError(
                f"{source}: no text column 'overview' or 'description'; its columns are: "
                f"{shown}; name one with --text-column"
            )
    elif text not in present:
        raise InputError(
            f"{source}: no text column {text!r}; its columns are: {shown}; "
            "name one of them with --text-column"
        )
    if title is None:
        title = TITLE_COLUMN if TITLE_COLUMN in present else None
    elif title == "":
        title = None
    elif title not in present:
        raise InputError(
            f"{source}: no title column {title!r}; its columns are: {shown}; "
            "name one with --title-column, or pass --title-column '' to score text alone"
        )
    if keep is None:
        keep = [name for name in (ID_COLUMN, TITLE_COLUMN) if name in present]
    missing = [name for name in keep if name not in present]
    if missing:
        raise InputError(
            f"{source}: no column {', '.join(repr(m) for m in missing)} to keep; its columns "
            f"are: {shown}"
        )
    return Columns(text, title, tuple(dict.fromkeys(keep)))


def output_names(genres: Sequence[str], with_scores: bool) -> list[str]:
    """The columns scoring adds after the kept ones, in order."""
    scores = [SCORE_PREFIX + genre for genre in genres] if with_scores else []
    return [GENRE, GENRES, SKIP_REASON, CONFIDENCE, *scores]


def check_output_names(columns: Columns, genres: Sequence[str], with_scores: bool) -> None:
    """A kept column must not share a name with one scoring adds."""
    clash = sorted(set(columns.keep) & set(output_names(genres, with_scores)))
    if clash:
        raise InputError(
            f"kept column {clash[0]!r} has the name of an output column; keep other columns "
            "with --keep, or rename it in the input"
        )


@dataclass(frozen=True)
class ScoredRows:
    """What scoring says of each row, in input order; unscored rows hold None and NaN."""

    genre: list[str | None]
    genres: list[list[str] | None]
    skip_reason: list[str | None]
    scores: npt.NDArray[np.float32]
    """Shape (rows, genres); NaN on rows that were not scored."""
    confidence: npt.NDArray[np.float32]
    """Shape (rows,): each prediction's confidence (`Predictor.confidences`); NaN on rows
    that were not scored."""

    @property
    def scored(self) -> int:
        return sum(reason is None for reason in self.skip_reason)


def _title_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def score_texts(
    predictor: Predictor, texts: Sequence[object], titles: Sequence[object] | None = None
) -> ScoredRows:
    """Genres for every row whose text is usable; a reason for every other row.

    Predictions equal `Predictor.predict` row for row (same scores, same
    threshold rule, ties broken by genre order), computed for the whole batch
    at once rather than one `Prediction` object per row. The model sees at
    most `MODEL_BATCH` texts at a time, whatever the caller hands in (a Dask
    partition, a whole DataFrame), so every engine scores in batches of one size.
    """
    count = len(texts)
    reasons: list[str | None] = [None] * count
    usable: list[int] = []
    descriptions: list[str] = []
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            reasons[row] = NO_TEXT if text is None else NOT_TEXT
            continue
        stripped = text.strip()
        if not stripped or (len(text) < 40 and is_placeholder(text)):
            reasons[row] = NO_TEXT
        else:
            usable.append(row)
            descriptions.append(stripped)
    row_titles = [_title_text(titles[row]) for row in usable] if titles is not None else None
    genre_names = predictor.genres
    probabilities = np.empty((len(usable), len(genre_names)), dtype=np.float32)
    for start in range(0, len(usable), MODEL_BATCH):
        end = start + MODEL_BATCH
        probabilities[start:end] = predictor.scores(
            descriptions[start:end], row_titles[start:end] if row_titles is not None else None
        )
    scores = np.full((count, len(genre_names)), np.nan, dtype=np.float32)
    top: list[str | None] = [None] * count
    above: list[list[str] | None] = [None] * count
    confidence = np.full(count, np.nan, dtype=np.float32)
    if usable:
        scores[usable] = probabilities
        confidence[usable] = predictor.confidences(probabilities)
        order = np.argsort(-probabilities, axis=1, kind="stable")
        passed = np.take_along_axis(probabilities >= predictor.thresholds, order, axis=1)
        # The genres at or above their thresholds, best first, for all rows in one go:
        # nonzero() walks `passed` row by row, so each row's genres come out in rank order.
        names = np.asarray(genre_names, dtype=object)
        flat: list[str] = names[order[passed]].tolist()
        ends = np.cumsum(passed.sum(axis=1)).tolist()
        firsts: list[str] = names[order[:, 0]].tolist()
        start = 0
        for row, first, end in zip(usable, firsts, ends, strict=True):
            top[row] = first
            above[row] = flat[start:end] or [first]
            start = end
    return ScoredRows(top, above, reasons, scores, confidence)


# -- one model per process ---------------------------------------------------------------------

_loaded: dict[tuple[str, int], Predictor] = {}
_loading = threading.Lock()
LOADS: dict[str, int] = {}
"""How many times this process loaded each model path (the Dask test reads it)."""


def cached_predictor(path: Path | str) -> Predictor:
    """The model at `path`, loaded once per process and kept while the files are unchanged.

    Dask tasks carry only the path; each worker process loads the model on its
    first partition and reuses it for every later one.
    """
    resolved = Path(path).resolve()
    stamp = (resolved / "metadata.json").stat().st_mtime_ns
    key = (str(resolved), stamp)
    with _loading:
        predictor = _loaded.get(key)
        if predictor is None:
            predictor = load_predictor(resolved)
            _loaded.clear()  # only the newest version of a model stays in memory
            _loaded[key] = predictor
            LOADS[str(resolved)] = LOADS.get(str(resolved), 0) + 1
        return predictor


def model_fingerprint(predictor: Predictor) -> str:
    """A short hash of a model's metadata (its files' sha256 included)."""
    text = json.dumps(predictor.metadata, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- pandas ------------------------------------------------------------------------------------


def scored_columns(rows: ScoredRows, genres: Sequence[str], *, with_scores: bool) -> dict[str, Any]:
    """The output columns as plain lists/arrays, keyed by name (`output_names` order)."""
    columns: dict[str, Any] = {
        GENRE: rows.genre,
        GENRES: rows.genres,
        SKIP_REASON: rows.skip_reason,
        CONFIDENCE: [
            None if reason is not None else float(value)
            for reason, value in zip(rows.skip_reason, rows.confidence.tolist(), strict=True)
        ],
    }
    if with_scores:
        for index, genre in enumerate(genres):
            columns[SCORE_PREFIX + genre] = rows.scores[:, index]
    return columns


def score_pandas(
    frame: pd.DataFrame,
    predictor: Predictor,
    *,
    text: str,
    title: str | None,
    keep: Sequence[str] | None,
    with_scores: bool,
) -> pd.DataFrame:
    """`frame`'s kept columns (all when `keep` is None) plus the scoring columns."""
    import pandas as pd

    texts = frame[text].tolist()
    titles = frame[title].tolist() if title else None
    rows = score_texts(predictor, texts, titles)
    added = pd.DataFrame(
        scored_columns(rows, predictor.genres, with_scores=with_scores), index=frame.index
    )
    for name in (GENRE, GENRES, SKIP_REASON):
        added[name] = added[name].astype(object)
    base = frame if keep is None else frame[list(keep)]
    return pd.concat([base, added], axis=1)


def parquet_schema(frame: pd.DataFrame) -> pa.Schema:
    """The Arrow schema to write a `score_frame` result (or its Dask `meta`) to Parquet.

    Dask's `to_parquet` cannot guess the type of the genre lists from an empty
    frame; pass it this: `scored.to_parquet(path, schema=parquet_schema(meta))`.
    Columns of Python objects are taken to hold text.
    """
    import pyarrow as pa

    fields = []
    for name in frame.columns:
        if name == GENRES:
            kind = pa.list_(pa.string())
        elif name in (GENRE, SKIP_REASON) or frame[name].dtype == object:
            kind = pa.string()
        elif str(name).startswith(SCORE_PREFIX) or name == CONFIDENCE:
            kind = pa.float32()
        else:
            kind = pa.Schema.from_pandas(frame[[name]], preserve_index=False).field(name).type
        fields.append(pa.field(str(name), kind))
    return pa.schema(fields)


def score_frame(
    frame: pd.DataFrame,
    *,
    text: str = "overview",
    title: str | None = "title",
    model: Predictor | Path | str | None = None,
    scores: bool = False,
) -> pd.DataFrame:
    """A copy of `frame` with `predicted_genre`, `predicted_genres`, `skip_reason` added.

    `model` is a Predictor or a model directory (default: $TGPLUS_MODEL_PATH,
    else data/model if it exists, else the bundled model), loaded once per
    process. `title=None` scores text alone; `scores=True` adds a
    `score_<Genre>` column per genre. Rows without usable text stay, with a
    reason in `skip_reason`. Works as the function of
    `dask.dataframe.map_partitions` too (see the README).
    """
    if model is None:
        from tgplus.config import Settings
        from tgplus.models.bundled import locate_model

        model = locate_model(Settings().model_path).path
    predictor = model if isinstance(model, Predictor) else cached_predictor(model)
    columns = choose_columns(
        [str(name) for name in frame.columns], "the DataFrame", text=text, title=title or ""
    )
    check_output_names(
        Columns(text, None, tuple(map(str, frame.columns))), predictor.genres, scores
    )
    return score_pandas(
        frame,
        predictor,
        text=columns.text,
        title=columns.title,
        keep=None,
        with_scores=scores,
    )
