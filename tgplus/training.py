"""Fit a model kind on movie files, tune its thresholds, measure it, save it.

    python tgplus/training.py [--data FILE ...]   # the original demo's way; see --help

The split is the data layer's stable split: the test side is never seen,
and the validation side is used only to tune per-genre thresholds.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script: import the tgplus package, not the modules beside this file.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from typing import Any

from tgplus.data import (
    DEFAULT_SPLIT,
    LoadSettings,
    Movie,
    MovieTable,
    SourceFormat,
    SplitSettings,
    genre_counts,
    require_movies,
    split_by_key,
    supported_files,
)
from tgplus.errors import DataError, ModelError
from tgplus.files import sha256_file
from tgplus.metrics import known_matrix, label_matrix, measure, tune_thresholds
from tgplus.models import DEFAULT_KIND, GenreModel, Predictor, model_class, save_predictor
from tgplus.models.artifact import check_destination
from tgplus.models.calibration import (
    DEFAULT_CONFIDENCE_LEVEL,
    DEFAULT_TARGET_PRECISION,
    Calibration,
)
from tgplus.models.embeddings import DEFAULT_ENCODER

log = logging.getLogger(__name__)

PARTIAL_LABELS = True
"""Whether training masks genres a movie's sources cannot express (bench/catalogues.py
measures both ways; see the README's "Partial labels")."""
MIN_CALIBRATION_MOVIES = 50


@dataclass
class TrainingResult:
    predictor: Predictor
    metrics: dict[str, Any]
    seconds: float
    path: Path | None = None


def make_model(kind: str, *, encoder: str = DEFAULT_ENCODER, progress: bool = False) -> GenreModel:
    """An unfitted model of `kind` with its default settings."""
    cls = model_class(kind)
    if cls.needs_embeddings:
        return cls(encoder=encoder, progress=progress)  # type: ignore[call-arg]
    return cls()


def library_versions(kind: str) -> dict[str, str]:
    names = ["tgplus", "numpy", "scipy", "scikit-learn"]
    if model_class(kind).needs_embeddings:
        names += ["torch", "sentence-transformers", "transformers"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def training_genres(movies: Sequence[Movie]) -> tuple[str, ...]:
    """The genres a model learns: every genre of the training movies, sorted."""
    genres = tuple(sorted(genre_counts(movies)))
    if len(genres) < 2:
        only = genres[0] if genres else "none"
        raise ModelError(
            f"the training movies have {len(genres)} genre ({only}); a classifier needs at "
            "least two; add movies of other genres"
        )
    return genres


# Fewer distinct descriptions than this leave TF-IDF's document frequencies meaningless
# (scikit-learn then fails with "max_df corresponds to < documents than min_df").
MIN_TRAINING_TEXTS = 10


def check_learnable(train: Sequence[Movie], genres: Sequence[str]) -> None:
    """Refuse, in words, training sides a classifier cannot learn from."""
    distinct = len({movie.text for movie in train})
    if distinct < MIN_TRAINING_TEXTS:
        raise ModelError(
            f"the train side has {distinct} distinct description(s) among {len(train)} movies; "
            f"a model needs at least {MIN_TRAINING_TEXTS} different ones; add more movies"
        )
    counts = genre_counts(train)
    always = [genre for genre in genres if counts[genre] == len(train)]
    if always:
        raise ModelError(
            f"every training movie is {always[0]}; a classifier needs movies without it too; "
            "add movies of other genres"
        )


def fit_predictor(
    model: GenreModel,
    train: Sequence[Movie],
    validation: Sequence[Movie],
    *,
    partial_labels: bool = PARTIAL_LABELS,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    confidence_level: float = DEFAULT_CONFIDENCE_LEVEL,
) -> Predictor:
    """Fit `model` on `train`; on `validation` fit the calibration (with the abstention
    threshold for `target_precision` at `confidence_level`, and the recall-control curve),
    then tune thresholds
    on the calibrated scores (0.5 and no calibration where there are too few movies).

    With `partial_labels`, a genre a movie's sources cannot express is neither
    a positive nor a negative example of it, in fitting, calibrating and tuning.
    """
    genres = training_genres(train)
    check_learnable(train, genres)
    known = known_matrix(train, genres) if partial_labels else None
    try:
        model.fit([movie.text for movie in train], label_matrix(train, genres), genres, known)
    except ValueError as error:  # scikit-learn's word for data it cannot fit; say it as ours
        raise ModelError(
            f"cannot train on these {len(train)} movies ({error}); add more, more varied movies"
        ) from None
    predictor = Predictor(model, [0.5] * len(genres))
    if not validation:
        return predictor
    raw = predictor.model.predict_proba([movie.text for movie in validation])
    labels = label_matrix(validation, genres)
    told = known_matrix(validation, genres) if partial_labels else None
    if len(validation) >= MIN_CALIBRATION_MOVIES:
        predictor.calibration = Calibration.fit(
            raw,
            labels,
            known=told,
            target_precision=target_precision,
            confidence_level=confidence_level,
        )
    else:
        log.warning(
            "only %d validation movies (fewer than %d): scores stay uncalibrated, without "
            "confidence threshold or recall control; use more data",
            len(validation),
            MIN_CALIBRATION_MOVIES,
        )
    predictor.thresholds = tune_thresholds(predictor.calibrated(raw), labels, known=told)
    return predictor


def _data_record(table: MovieTable) -> list[dict[str, Any]]:
    return [
        {
            "path": str(Path(file.path).resolve()),  # usable from any directory later
            "sha256": sha256_file(Path(file.path)),
            "format": file.format,
            "rows_read": file.rows_read,
            "rows_kept": file.rows_kept,
            "rows_skipped": dict(file.skipped),
            "duplicates_that_added_genres": file.merged_new_genres,
            "unmapped_genre_names": {
                name: count for name, count in file.genre_names.items() if not file.mapped_to[name]
            },
            "expressible_genres": sorted(file.expressible),
        }
        for file in table.report.files
    ]


def train(
    files: Sequence[Path] | None = None,
    *,
    kind: str = DEFAULT_KIND,
    out: Path | None = None,
    loading: LoadSettings | None = None,
    source_format: SourceFormat = SourceFormat.AUTO,
    languages: frozenset[str] | None = frozenset({"en"}),
    split: SplitSettings = DEFAULT_SPLIT,
    encoder: str = DEFAULT_ENCODER,
    progress: bool = False,
    model: GenreModel | None = None,
    partial_labels: bool = PARTIAL_LABELS,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    confidence_level: float = DEFAULT_CONFIDENCE_LEVEL,
    feedback: str | None = None,
) -> TrainingResult:
    """Load `files`, fit `kind` on the train side, measure it on the test side, save to `out`.

    `files` may hold directories (every movie file under them); None means
    every movie file under data/. `loading` says how to read them (without
    it: `source_format` and `languages`, the built-in genre mappings, movies only).
    `feedback` is a feedback database URL: its editors' genres override the
    files' genres for the same film, and films only they answered for are added.
    """
    if out is not None:
        check_destination(out)  # before minutes of training, not after
    model = model or make_model(kind, encoder=encoder, progress=progress)
    loading = loading or LoadSettings(source_format=source_format, languages=languages)
    files = training_files_or_default(files)
    started = time.perf_counter()
    table = loading.load(files)
    movies = require_movies(table, "train on")
    feedback_record: dict[str, Any] | None = None
    if feedback is not None:
        from tgplus.feedback.corrections import apply_corrections, read_corrections

        corrections = read_corrections(feedback, loading.taxonomy)
        corrected = apply_corrections(movies, corrections)
        movies, feedback_record = corrected.movies, corrected.metadata(corrections)
    parts = split_by_key(movies, split)
    if not parts.train:
        raise ModelError(
            f"all {len(movies)} movies fell outside the train side; lower --test-share"
        )
    log.info(
        "training %s on %d movies (%d validation, %d test held out)",
        model.kind,
        len(parts.train),
        len(parts.validation),
        len(parts.test),
    )
    predictor = fit_predictor(
        model,
        parts.train,
        parts.validation,
        partial_labels=partial_labels,
        target_precision=target_precision,
        confidence_level=confidence_level,
    )
    seconds = time.perf_counter() - started
    metrics = measure(predictor, parts.test).metrics
    report = table.report
    described = loading.to_metadata()
    predictor.metadata = {
        "kind": model.kind,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 2),
        "hyperparameters": model.describe(),
        "data": _data_record(table),
        "rows": {
            "read": report.rows_read,
            "kept": report.rows_kept,
            "skipped": dict(report.skipped),
            "train": len(parts.train),
            "validation": len(parts.validation),
            "test": len(parts.test),
            "partial_labels": sum(movie.known is not None for movie in movies),
        },
        "language_filter": described.pop("language_filter"),
        "loading": described,
        "partial_labels": partial_labels,
        "split": split.to_dict(),
        "thresholds_tuned_on": "validation" if parts.validation else "none (0.5 everywhere)",
        "calibrated_on": "validation" if predictor.calibration else "none",
        "metrics": {"test": metrics},
        "versions": library_versions(model.kind),
    }
    if feedback_record is not None:
        predictor.metadata["feedback"] = feedback_record
    if out is not None:
        save_predictor(predictor, out)
    return TrainingResult(predictor, metrics, seconds, out)


DEFAULT_DATA_DIR = Path("data")


def default_data_files(data_dir: Path = DEFAULT_DATA_DIR) -> list[Path]:
    """Every movie file under `data_dir`, recursively (where `tgplus data fetch` writes)."""
    return supported_files(data_dir) if data_dir.is_dir() else []


def training_files_or_default(files: Sequence[Path] | None) -> list[Path]:
    """`files`, or every movie file under data/; a DataError when there are none."""
    if files:
        return list(files)
    found = default_data_files()
    if not found:
        raise DataError(
            "no training data: pass --data FILE or --data DIRECTORY, or run `tgplus data fetch` "
            "to download The Movies Dataset into data/"
        )
    return found


if __name__ == "__main__":
    from tgplus.cli import app

    sys.exit(app(["train", *sys.argv[1:]], standalone_mode=True))
