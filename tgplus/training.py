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

import copy
import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from typing import Any

import numpy as np
import numpy.typing as npt

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
from tgplus.metrics import (
    THRESHOLD_FOLDS,
    known_matrix,
    label_matrix,
    measure,
    tune_thresholds,
)
from tgplus.models import DEFAULT_KIND, GenreModel, Predictor, model_class, save_predictor
from tgplus.models.artifact import check_destination
from tgplus.models.calibration import (
    DEFAULT_CONFIDENCE_LEVEL,
    DEFAULT_TARGET_PRECISION,
    Calibration,
    GenreMaps,
    LearnedConfidence,
)
from tgplus.models.embeddings import DEFAULT_ENCODER, require_embeddings

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
        require_embeddings()  # now, not after minutes of training
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
    threshold_folds: int = THRESHOLD_FOLDS,
    confidence_level: float = DEFAULT_CONFIDENCE_LEVEL,
) -> Predictor:
    """Fit `model` on `train`; on `validation` fit the calibration (with the confidence
    learned from the out-of-source scores below when there are any, the abstention
    threshold for `target_precision` at `confidence_level`, and the recall-control curve),
    then tune thresholds on calibrated scores (0.5 and no calibration where there are too
    few movies): the out-of-source scores of the train movies (`out_of_source_scores`,
    `threshold_folds` groups of source files), or the validation share's when
    `threshold_folds` is 0 or the movies come from one file.

    With `partial_labels`, a genre a movie's sources cannot express is neither
    a positive nor a negative example of it, in fitting, calibrating and tuning.
    """
    genres = training_genres(train)
    check_learnable(train, genres)
    known = known_matrix(train, genres) if partial_labels else None
    unfitted = copy.deepcopy(model)  # for out-of-source threshold tuning
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
    if threshold_folds and not model.refits_cheaply:
        log.info(
            "%s: thresholds tuned on the validation share (out of source, they would fit the "
            "model %d more times)",
            model.kind,
            threshold_folds,
        )
        threshold_folds = 0
    crossed = (
        out_of_source_scores(unfitted, train, genres, known, threshold_folds)
        if threshold_folds
        else None
    )
    if len(validation) >= MIN_CALIBRATION_MOVIES:
        predictor.calibration = Calibration.fit(
            raw,
            labels,
            known=told,
            target_precision=target_precision,
            confidence_level=confidence_level,
            confidence=None if crossed is None else learned_confidence(crossed),
        )
    else:
        log.warning(
            "only %d validation movies (fewer than %d): scores stay uncalibrated, without "
            "confidence threshold or recall control; use more data",
            len(validation),
            MIN_CALIBRATION_MOVIES,
        )
    predictor.thresholds = tune_thresholds(predictor.calibrated(raw), labels, known=told)
    predictor.metadata["thresholds_tuned_on"] = "validation"
    if crossed is None:
        return predictor
    # A genre no fold could judge (say, only one group of files can name it) keeps the
    # threshold tuned on the validation share.
    judged = (crossed.labels & crossed.known).any(axis=0)
    out_of_source = tune_thresholds(
        predictor.calibrated(crossed.scores), crossed.labels, known=crossed.known
    )
    predictor.thresholds = np.where(judged, out_of_source, predictor.thresholds)
    unjudged = [genres[g] for g in np.flatnonzero(~judged).tolist()]
    predictor.metadata["thresholds_tuned_on"] = crossed.description + (
        f"; validation for {', '.join(unjudged)}" if unjudged else ""
    )
    return predictor


def learned_confidence(crossed: CrossFitted) -> Callable[[GenreMaps], LearnedConfidence | None]:
    """How `Calibration.fit` learns the confidence from the out-of-source scores: the same
    scores the thresholds are tuned on, so no extra fit (see `LearnedConfidence`)."""

    def fit(maps: GenreMaps) -> LearnedConfidence | None:
        return LearnedConfidence.fit(
            maps.apply(crossed.scores), crossed.labels, crossed.known, crossed.description
        )

    return fit


@dataclass(frozen=True)
class CrossFitted:
    """Each training movie's raw scores from a model that never saw its source file."""

    scores: npt.NDArray[np.float32]
    labels: npt.NDArray[np.bool_]
    known: npt.NDArray[np.bool_]
    """False where the movie's sources cannot express the genre, or where the fold's
    model never saw a positive example of it (its score there says nothing)."""
    description: str


def source_folds(movies: Sequence[Movie], folds: int) -> list[set[str]]:
    """The movies' source files in `folds` groups of about equal size (largest file
    first into the smallest group), or fewer groups when there are fewer files."""
    sizes: dict[str, int] = {}
    for movie in movies:
        sizes[movie.source] = sizes.get(movie.source, 0) + 1
    groups: list[set[str]] = [set() for _ in range(min(folds, len(sizes)))]
    totals = [0] * len(groups)
    for source, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        smallest = totals.index(min(totals))
        groups[smallest].add(source)
        totals[smallest] += size
    return groups


def out_of_source_scores(
    model: GenreModel,
    train: Sequence[Movie],
    genres: Sequence[str],
    known: npt.NDArray[np.bool_] | None,
    folds: int = THRESHOLD_FOLDS,
) -> CrossFitted | None:
    """Cross-fitting by source file: the train movies' files are put in `folds` groups,
    and for each group a copy of the unfitted `model` (same kind and settings) is fitted on
    the movies no file of the group holds and scores the movies first read from it.

    Thresholds tuned on these scores fit what users do, score a catalogue the model
    never saw: tuned on the validation share instead (films from the very catalogues
    the model learned from), they came out too high for unseen catalogues. None when
    the movies come from a single file (nothing to hold out) or a fold cannot be fitted.
    """
    groups = source_folds(train, folds)
    if len(groups) < 2:
        return None
    labels = label_matrix(train, genres)
    told = known if known is not None else np.ones_like(labels)
    scores = np.zeros(labels.shape, dtype=np.float32)
    usable = told.copy()
    for group in groups:
        scored = np.array([movie.source in group for movie in train])
        fitted_on = np.array([not group & set(movie.sources or (movie.source,)) for movie in train])
        rows: list[int] = np.flatnonzero(fitted_on).tolist()
        fold_model = copy.deepcopy(model)
        try:
            check_learnable([train[i] for i in rows], genres)
            # A genre no movie of the other files has is fitted as a constant; that
            # genre's cells of this fold are left out of tuning below.
            fold_model.fit(
                [train[i].text for i in rows],
                labels[rows],
                genres,
                known[rows] if known is not None else None,
            )
        except (ModelError, ValueError) as error:
            log.warning(
                "thresholds tuned on the validation share: a model without the files %s "
                "cannot be fitted (%s)",
                ", ".join(sorted(group)),
                error,
            )
            return None
        scored_rows: list[int] = np.flatnonzero(scored).tolist()
        scores[scored] = fold_model.predict_proba([train[i].text for i in scored_rows])
        never_positive = ~(labels[rows] & told[rows]).any(axis=0)
        usable[np.ix_(scored, never_positive)] = False
    return CrossFitted(
        scores,
        labels,
        usable,
        f"out-of-source scores of {len(train)} training movies "
        f"({len(groups)} folds by source file)",
    )


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
    threshold_folds: int = THRESHOLD_FOLDS,
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
        threshold_folds=threshold_folds,
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
        "thresholds_tuned_on": predictor.metadata.get(
            "thresholds_tuned_on", "none (0.5 everywhere)"
        ),
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
