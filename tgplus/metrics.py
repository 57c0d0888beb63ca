"""Multi-label genre metrics: over score and label arrays, and of a Predictor on movies.

Used by training (threshold tuning, held-out metrics) and by evaluation
(reports, baselines side by side), so both measure the same way: `measure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.data.table import Movie, genre_counts
from tgplus.models import Predictor

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float32]

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)

# The figures reports lead with, and their short column headings.
HEADLINE = {
    "hit_at_1": "hit@1",
    "precision_at_3": "p@3",
    "micro_f1": "micro F1",
    "macro_f1": "macro F1",
    "samples_f1": "sample F1",
    "jaccard": "Jaccard",
}


def label_matrix(movies: Sequence[Movie], genres: Sequence[str]) -> Bools:
    """Shape (movies, genres): True where the movie has the genre."""
    column = {genre: i for i, genre in enumerate(genres)}
    labels = np.zeros((len(movies), len(genres)), dtype=bool)
    for row, movie in enumerate(movies):
        for genre in movie.genres:
            if genre in column:
                labels[row, column[genre]] = True
    return labels


def tune_thresholds(scores: Floats, labels: Bools, default: float = 0.5) -> Floats:
    """Per genre, the threshold on the grid that maximises that genre's F1.

    Genres without a positive example keep `default`. Ties go to the higher
    threshold (fewer false alarms).
    """
    thresholds = np.full(labels.shape[1], default, dtype=np.float32)
    for genre in range(labels.shape[1]):
        truth = labels[:, genre]
        if not truth.any():
            continue
        predicted = scores[:, genre][:, None] >= THRESHOLD_GRID[None, :]
        true_positive = (predicted & truth[:, None]).sum(axis=0)
        f1 = 2 * true_positive / (predicted.sum(axis=0) + truth.sum())
        best = np.flatnonzero(f1 == f1.max())[-1]
        thresholds[genre] = THRESHOLD_GRID[best]
    return thresholds


def decide(scores: Floats, thresholds: Floats) -> Bools:
    """At or above threshold; a row with none gets its top genre (as Predictor does)."""
    decided = scores >= thresholds
    empty = ~decided.any(axis=1)
    decided[np.flatnonzero(empty), scores[empty].argmax(axis=1)] = True
    return decided


def _safe_ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def genre_metrics(
    scores: Floats, decided: Bools, truth: Bools, genres: Sequence[str]
) -> dict[str, Any]:
    """hit@1, precision@3, F1 (micro, macro, samples), Jaccard, and per-genre figures.

    Columns of `truth` that the model cannot predict (all-zero scores) simply
    count as misses. Macro F1 averages over genres present in `truth`.
    """
    from sklearn.metrics import f1_score, jaccard_score, precision_recall_fscore_support

    n = len(truth)
    if n == 0:
        return {"movies": 0}
    top = scores.argmax(axis=1)
    hit_at_1 = float(truth[np.arange(n), top].mean())
    k = min(3, scores.shape[1])
    top3 = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    precision_at_3 = float(np.take_along_axis(truth, top3, axis=1).sum(axis=1).mean() / k)
    present = np.flatnonzero(truth.any(axis=0))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, decided, average=None, zero_division=0
    )
    return {
        "movies": n,
        "hit_at_1": round(hit_at_1, 4),
        "precision_at_3": round(precision_at_3, 4),
        "micro_f1": round(float(f1_score(truth, decided, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(np.mean(f1[present])) if len(present) else 0.0, 4),
        "samples_f1": round(float(f1_score(truth, decided, average="samples", zero_division=0)), 4),
        "jaccard": round(
            float(jaccard_score(truth, decided, average="samples", zero_division=0)), 4
        ),
        "genres_per_movie_predicted": round(float(decided.sum(axis=1).mean()), 3),
        "genres_per_movie_true": round(float(truth.sum(axis=1).mean()), 3),
        "per_genre": {
            genre: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i, genre in enumerate(genres)
        },
    }


def reliability(scores: Floats, truth: Bools, bins: int = 10) -> dict[str, Any]:
    """Mean score and observed frequency per score bin, over every (movie, genre) pair,
    and the expected calibration error (their count-weighted mean gap)."""
    flat_scores, flat_truth = scores.ravel(), truth.ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(flat_scores, edges[1:-1]), 0, bins - 1)
    counts, means, observed = [], [], []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        counts.append(count)
        means.append(round(float(flat_scores[mask].mean()), 4) if count else 0.0)
        observed.append(round(float(flat_truth[mask].mean()), 4) if count else 0.0)
    gaps = sum(c * abs(m - o) for c, m, o in zip(counts, means, observed, strict=True))
    return {
        "mean_score": means,
        "observed": observed,
        "count": counts,
        "expected_calibration_error": round(_safe_ratio(gaps, sum(counts)), 4),
    }


@dataclass(frozen=True)
class Measurement:
    """A model's figures on a set of movies."""

    metrics: dict[str, Any]
    reliability: dict[str, Any]
    unseen_genres: dict[str, int]
    """Genres of the movies that the model never learned, with their counts."""


def measure(predictor: Predictor, movies: Sequence[Movie]) -> Measurement:
    """Score `movies` and compare with their genres.

    Genres the model never learned are added as columns it never predicts, so
    movies that have them count as misses for them (and for hit@1 when they
    have nothing else).
    """
    if not movies:
        return Measurement({"movies": 0}, {}, {})
    known = list(predictor.genres)
    unseen = {g: n for g, n in genre_counts(movies).most_common() if g not in set(known)}
    genres = known + sorted(unseen)
    scores = predictor.score_texts([movie.text for movie in movies])
    decided = decide(scores, predictor.thresholds)
    never = np.zeros((len(movies), len(unseen)), dtype=bool)
    truth = label_matrix(movies, genres)
    metrics = genre_metrics(
        np.hstack([scores, never.astype(np.float32)]), np.hstack([decided, never]), truth, genres
    )
    return Measurement(metrics, reliability(scores, truth[:, : len(known)]), unseen)
