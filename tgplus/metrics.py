"""Multi-label genre metrics: over score and label arrays, and of a Predictor on movies.

Used by training (threshold tuning, held-out metrics) and by evaluation
(reports, baselines side by side), so both measure the same way: `measure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.data.table import Movie, genre_counts
from tgplus.models import Predictor
from tgplus.models.calibration import TOP_SCORE

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float32]

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
THRESHOLD_FOLDS = 3
"""Groups of source files whose out-of-source scores training tunes thresholds on
(`tgplus.training.out_of_source_scores`); 0 tunes them on the validation share."""

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


def known_matrix(movies: Sequence[Movie], genres: Sequence[str]) -> Bools:
    """Shape (movies, genres): False where the movie's sources cannot express the genre."""
    return np.array([[movie.can_say(g) for g in genres] for movie in movies], dtype=bool).reshape(
        len(movies), len(genres)
    )


def tune_thresholds(
    scores: Floats, labels: Bools, default: float = 0.5, known: Bools | None = None
) -> Floats:
    """Per genre, the threshold on the grid that maximises that genre's F1.

    Genres without a positive example keep `default`. Ties go to the higher
    threshold (fewer false alarms). With `known`, each genre is tuned on the
    movies whose sources can express it.
    """
    thresholds = np.full(labels.shape[1], default, dtype=np.float32)
    for genre in range(labels.shape[1]):
        rows = known[:, genre] if known is not None else slice(None)
        truth = labels[rows, genre]
        if not truth.any():
            continue
        predicted = scores[rows, genre][:, None] >= THRESHOLD_GRID[None, :]
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


def _ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Element-wise numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(np.shape(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def genre_metrics(
    scores: Floats,
    decided: Bools,
    truth: Bools,
    genres: Sequence[str],
    known: Bools | None = None,
) -> dict[str, Any]:
    """hit@1, precision@3, F1 (micro, macro, samples), Jaccard, and per-genre figures.

    Columns of `truth` that the model cannot predict (all-zero scores) simply
    count as misses. Macro F1 averages over genres present in `truth`. With
    `known` (partial labels), a cell whose movie cannot express the genre is
    left out of every figure: the top genre is the best-scored genre the
    movie's source can name, and a prediction of a genre it cannot name is
    neither a hit nor a false alarm.
    """
    n = len(truth)
    if n == 0:
        return {"movies": 0}
    known = known if known is not None else np.ones_like(truth)
    ranked = np.where(known, scores, -np.inf)
    top = ranked.argmax(axis=1)
    hit_at_1 = float(truth[np.arange(n), top].mean())
    k = min(3, scores.shape[1])
    top3 = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    precision_at_3 = float(np.take_along_axis(truth, top3, axis=1).sum(axis=1).mean() / k)
    predicted = decided & known
    hits = predicted & truth
    tp, n_pred, n_true = hits.sum(axis=0), predicted.sum(axis=0), truth.sum(axis=0)
    precision, recall = _ratio(tp, n_pred), _ratio(tp, n_true)
    f1 = _ratio(2 * tp, n_pred + n_true)
    present = np.flatnonzero(n_true)
    row_tp, row_pred, row_true = hits.sum(axis=1), predicted.sum(axis=1), truth.sum(axis=1)
    micro = _ratio(np.asarray(2 * tp.sum()), np.asarray(n_pred.sum() + n_true.sum()))
    return {
        "movies": n,
        "hit_at_1": round(hit_at_1, 4),
        "precision_at_3": round(precision_at_3, 4),
        "micro_f1": round(float(micro), 4),
        "macro_f1": round(float(np.mean(f1[present])) if len(present) else 0.0, 4),
        "samples_f1": round(float(_ratio(2 * row_tp, row_pred + row_true).mean()), 4),
        "jaccard": round(float(_ratio(row_tp, row_pred + row_true - row_tp).mean()), 4),
        "genres_per_movie_predicted": round(float(predicted.sum(axis=1).mean()), 3),
        "genres_per_movie_true": round(float(truth.sum(axis=1).mean()), 3),
        "partial_label_movies": int((~known).any(axis=1).sum()),
        "per_genre": {
            genre: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(n_true[i]),
            }
            for i, genre in enumerate(genres)
        },
    }


def reliability(
    scores: Floats, truth: Bools, bins: int = 10, known: Bools | None = None
) -> dict[str, Any]:
    """Mean score and observed frequency per score bin, over every (movie, genre) pair
    (those that are `known`), and the expected calibration error (their count-weighted
    mean gap)."""
    cells = known.ravel() if known is not None else slice(None)
    flat_scores, flat_truth = scores.ravel()[cells], truth.ravel()[cells]
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


COVERAGES = (1.0, 0.9, 0.8, 0.5)
RECALL_TARGETS = (0.8, 0.9, 0.95)


def per_genre_calibration_error(
    scores: Floats, truth: Bools, genres: Sequence[str], known: Bools, bins: int = 10
) -> dict[str, float]:
    """Expected calibration error of each genre's scores on its own (`known` cells)."""
    return {
        genre: reliability(scores[:, [g]], truth[:, [g]], bins, known[:, [g]])[
            "expected_calibration_error"
        ]
        for g, genre in enumerate(genres)
        if known[:, g].any()
    }


def risk_coverage(
    scores: Floats, truth: Bools, points: int = 50, confidence: Floats | None = None
) -> dict[str, Any]:
    """hit@1 among the movies answered when only the most confident share is answered
    (`confidence` per movie, by default the top genre's score), as a curve and at
    COVERAGES. `scores` of genres a movie's source cannot name should be -inf (as
    `genre_metrics` ranks them)."""
    labelled = truth.any(axis=1)
    if confidence is None:
        confidence = scores.max(axis=1)
    scores, truth, confidence = scores[labelled], truth[labelled], confidence[labelled]
    if not len(scores):
        return {"coverage": [], "hit_at_1": [], "table": {}}
    hits = truth[np.arange(len(truth)), scores.argmax(axis=1)]
    ranked = hits[np.argsort(-confidence, kind="stable")]
    running = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)

    def at(coverage: float) -> float:
        return round(float(running[max(round(coverage * len(ranked)), 1) - 1]), 4)

    grid = np.linspace(1.0, 1.0 / points, points)
    return {
        "coverage": [round(float(c), 4) for c in grid],
        "hit_at_1": [at(float(c)) for c in grid],
        "table": {f"{c:.0%}": at(c) for c in COVERAGES},
    }


def recall_control_results(
    predictor: Predictor, scores: Floats, truth: Bools
) -> dict[str, dict[str, float]]:
    """For each recall target, the recall the genre sets achieved and their mean size."""
    if predictor.calibration is None:
        return {}
    from tgplus.models.calibration import recall_sets

    known = truth.any(axis=1)
    found = {}
    for target in RECALL_TARGETS:
        sets = recall_sets(scores[known], predictor.calibration.recall_threshold(target))
        achieved = (sets & truth[known]).sum(axis=1) / truth[known].sum(axis=1)
        found[f"{target}"] = {
            "achieved_recall": round(float(achieved.mean()), 4) if len(achieved) else 0.0,
            "mean_set_size": round(float(sets.sum(axis=1).mean()), 3) if len(sets) else 0.0,
        }
    return found


def confident_mistakes(
    movies: Sequence[Movie],
    scores: Floats,
    truth: Bools,
    genres: Sequence[str],
    count: int = 20,
    confidence: Floats | None = None,
) -> list[dict[str, Any]]:
    """The `count` movies whose top genre is wrong with the highest `confidence` (by
    default the top genre's score)."""
    top = scores.argmax(axis=1)  # (-inf where the movie's source cannot name the genre)
    if confidence is None:
        confidence = scores[np.arange(len(scores)), top]
    wrong = np.flatnonzero(~truth[np.arange(len(truth)), top] & truth.any(axis=1))
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    return [
        {
            "title": movies[i].title,
            "description": movies[i].overview[:120],
            "predicted": genres[top[i]],
            "confidence": round(float(confidence[i]), 4),
            "true": list(movies[i].genres),
        }
        for i in worst
    ]


def confused_pairs(
    decided: Bools, truth: Bools, genres: Sequence[str], known: Bools, count: int = 10
) -> list[dict[str, Any]]:
    """The (true genre, wrongly added genre) pairs seen most often: a movie of `true`
    tagged `added`, which it does not have (and its source could have named)."""
    added = decided & ~truth & known
    pairs = truth.T.astype(np.int64) @ added.astype(np.int64)  # (true genre, added genre)
    np.fill_diagonal(pairs, 0)
    order = np.argsort(-pairs, axis=None, kind="stable")[:count]
    found = []
    for flat in order:
        a, b = np.unravel_index(flat, pairs.shape)
        if pairs[a, b] == 0:
            break
        found.append(
            {
                "true": genres[a],
                "added": genres[b],
                "movies": int(pairs[a, b]),
                "share_of_true": round(float(pairs[a, b] / max(truth[:, a].sum(), 1)), 4),
            }
        )
    return found


@dataclass(frozen=True)
class Measurement:
    """A model's figures on a set of movies."""

    metrics: dict[str, Any]
    reliability: dict[str, Any]
    unseen_genres: dict[str, int]
    """Genres of the movies that the model never learned, with their counts."""
    trust: dict[str, Any] = field(default_factory=dict)
    """Calibration per genre, risk-coverage, recall control, mistakes and confusions."""


def measure(
    predictor: Predictor,
    movies: Sequence[Movie],
    *,
    partial_labels: bool = True,
    scores: Floats | None = None,
) -> Measurement:
    """Score `movies` (unless their calibrated `scores` are given) and compare with their
    genres.

    Genres the model never learned are added as columns it never predicts, so
    movies that have them count as misses for them (and for hit@1 when they
    have nothing else). With `partial_labels`, a genre a movie's sources
    cannot express is left out of its figures (see `genre_metrics`).
    """
    if not movies:
        return Measurement({"movies": 0}, {}, {})
    known = list(predictor.genres)
    unseen = {g: n for g, n in genre_counts(movies).most_common() if g not in set(known)}
    genres = known + sorted(unseen)
    if scores is None:
        scores = predictor.score_texts([movie.text for movie in movies])
    decided = decide(scores, predictor.thresholds)
    never = np.zeros((len(movies), len(unseen)), dtype=bool)
    truth = label_matrix(movies, genres)
    told = known_matrix(movies, genres) if partial_labels else None
    all_decided = np.hstack([decided, never])
    metrics = genre_metrics(
        np.hstack([scores, never.astype(np.float32)]), all_decided, truth, genres, told
    )
    told_known = told[:, : len(known)] if told is not None else np.ones_like(decided)
    calibration = reliability(scores, truth[:, : len(known)], known=told_known)
    trust = trust_figures(
        predictor,
        movies,
        scores,
        truth[:, : len(known)],
        told_known,
        confusions=confused_pairs(
            all_decided, truth, genres, told if told is not None else np.ones_like(truth)
        ),
    )
    return Measurement(metrics, calibration, unseen, trust)


def trust_figures(
    predictor: Predictor,
    movies: Sequence[Movie],
    scores: Floats,
    truth: Bools,
    known: Bools,
    confusions: list[dict[str, Any]],
) -> dict[str, Any]:
    """What an editor needs to trust the scores: calibration per genre, abstention,
    recall control, the most confident mistakes and the commonest confusions."""
    genres = predictor.genres
    ranked = np.where(known, scores, -np.inf).astype(np.float32)
    calibration = predictor.calibration
    # The learned confidence is of the served score vector (the top score of `ranked`
    # ranks as before it, and as older models did).
    learned = (
        predictor.confidences(scores)
        if calibration is not None and calibration.confidence is not None
        else None
    )
    confident = None
    if calibration is not None:
        # As served (and as the threshold was chosen): the model's own top genre, on the
        # movies whose sources can name it.
        top = scores.argmax(axis=1)
        rows = np.arange(len(scores))
        counted = truth.any(axis=1) & known[rows, top]
        served = learned if learned is not None else scores[rows, top]
        answered = counted & (served >= calibration.threshold)
        confident = {
            "threshold": calibration.threshold,
            "target_precision": calibration.target_precision,
            "confidence_level": calibration.confidence_level,
            "confidence": "learned" if calibration.confidence is not None else TOP_SCORE,
            "share": round(float(answered.sum() / counted.sum()), 4) if counted.any() else 0.0,
            "hit_at_1": round(float(truth[rows, top][answered].mean()), 4)
            if answered.any()
            else None,
        }
    return {
        "calibrated": calibration is not None,
        "calibration_error_per_genre": per_genre_calibration_error(scores, truth, genres, known),
        "risk_coverage": risk_coverage(ranked, truth, confidence=learned),
        "recall_control": recall_control_results(predictor, scores, truth),
        "confident": confident,
        "confident_mistakes": confident_mistakes(movies, ranked, truth, genres, confidence=learned),
        "confused_pairs": confusions,
    }
