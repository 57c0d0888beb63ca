"""Score a whole catalogue file in batch: every movie in, one prediction per row out.

Rows without a usable description are counted and reported, never dropped
silently. The output is written atomically: a crash leaves no partial file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tgplus.data import LoadReport, Movie, SourceFormat, load_movies
from tgplus.files import atomic_file
from tgplus.models import Prediction, Predictor

BATCH = 1024


@dataclass(frozen=True)
class ScoringReport:
    load: LoadReport
    scored: int
    output: Path | None

    def describe(self) -> str:
        skipped = sum(self.load.skipped.values())
        reasons = ", ".join(f"{n} {reason}" for reason, n in self.load.skipped.most_common())
        where = str(self.output) if self.output else "stdout"
        line = f"scored {self.scored:,} of {self.load.rows_read:,} rows -> {where}"
        return line + (f"; skipped {skipped:,}: {reasons}" if skipped else "")


def _predictions(
    predictor: Predictor, movies: Sequence[Movie], top_k: int
) -> Iterator[tuple[Movie, Prediction]]:
    for start in range(0, len(movies), BATCH):
        chunk = movies[start : start + BATCH]
        predictions = predictor.predict(
            [m.overview for m in chunk], [m.title for m in chunk], top_k=top_k
        )
        yield from zip(chunk, predictions, strict=True)


def _write(
    stream: IO[str], predictor: Predictor, movies: Sequence[Movie], top_k: int, as_jsonl: bool
) -> None:
    if as_jsonl:
        for movie, prediction in _predictions(predictor, movies, top_k):
            record = {
                "id": movie.id,
                "title": movie.title,
                **prediction.as_dict(digits=4, with_scores=True),
            }
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(stream)
    writer.writerow(["id", "title", "genre", "genres", *predictor.genres])
    for movie, prediction in _predictions(predictor, movies, top_k):
        writer.writerow(
            [
                "" if movie.id is None else movie.id,
                movie.title,
                prediction.genre,
                "|".join(prediction.genres),
                *(f"{prediction.scores[g]:.4f}" for g in predictor.genres),
            ]
        )


def score_file(
    predictor: Predictor,
    source: Path,
    output: Path | None,
    *,
    source_format: SourceFormat = SourceFormat.AUTO,
    languages: frozenset[str] | None = None,
    top_k: int = 3,
) -> ScoringReport:
    """Predict genres for every usable row of `source`; write CSV or JSONL (by suffix)."""
    table = load_movies(
        [source],
        source_format=source_format,
        languages=languages,
        require_genres=False,
        deduplicate=False,
    )
    as_jsonl = output is not None and output.suffix.lower() in (".jsonl", ".ndjson")
    if output is None:
        _write(sys.stdout, predictor, table.movies, top_k, as_jsonl)
    else:
        with atomic_file(output) as partial, partial.open("w", encoding="utf-8", newline="") as f:
            _write(f, predictor, table.movies, top_k, as_jsonl)
    return ScoringReport(table.report, len(table.movies), output)
