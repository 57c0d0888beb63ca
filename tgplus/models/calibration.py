"""Scores to read as probabilities, when to abstain, and genre sets with guaranteed recall.

All three are fitted on the validation share at training time and served as a few numbers:

- **Calibration.** Per genre, a monotone map from the model's raw score to the share of
  movies with that score that have the genre: isotonic regression where the genre has
  enough validation examples (`ISOTONIC_MIN_EXAMPLES` movies, `ISOTONIC_MIN_CLASS` of each
  class), Platt scaling (a logistic curve on the raw log-odds) elsewhere. Isotonic steps
  are served as knots for `np.interp`, Platt as two numbers.
- **Confidence.** The probability that a prediction's top genre is right, learned
  (`LearnedConfidence`: a logistic regression on six features of the calibrated score
  vector) from training movies scored by models that never saw their source file (the
  out-of-source scores thresholds are tuned on). Without such scores (one source file, or
  no cross-fit) the confidence is the calibrated score of the top genre, as before.
- **Abstention.** A prediction is `confident` at or above the lowest confidence threshold
  whose precision (the share of movies so answered whose top genre is right) reaches
  `target_precision` with probability `confidence_level` (default 0.9), by exact binomial
  tests of ten candidate thresholds on the validation movies (see `confidence_threshold`):
  not merely on average, as the validation share's own precision would.
- **Recall control.** For a target recall `1 - alpha`, the genre set is the top genre plus
  every genre whose calibrated score is at least `lambda`; `lambda` is chosen by conformal
  risk control (Angelopoulos et al. 2022, the "crc" method of MAPIE's multi-label recall
  controller): the largest `lambda` with `(n * R(lambda) + 1) / (n + 1) <= alpha`, where
  `R` is the mean share of a validation movie's genres its set misses. The model keeps the
  whole curve `R`, so any target can be served at request time.

Abstention and recall control are fitted on *out-of-fold* calibrated scores (the
calibration refitted on the other folds of the validation share), so that the served
calibration, fitted on all of it, is not judged on the very movies it was fitted to.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from tgplus.errors import InputError, ModelError

log = logging.getLogger(__name__)

Floats = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
Method = Literal["isotonic", "platt", "none"]

ISOTONIC_MIN_EXAMPLES = 1000
ISOTONIC_MIN_CLASS = 50
DEFAULT_TARGET_PRECISION = 0.9
MIN_ANSWERED = 20  # a threshold must leave this many validation movies answered
DEFAULT_CONFIDENCE_LEVEL = 0.9
"""How sure `confident`'s precision is to reach its target (see `confidence_threshold`)."""
ANSWERED_SHARES = np.round(np.arange(0.1, 1.0, 0.1), 1)
"""The shares of validation movies answered at the candidate `confident` thresholds."""
FOLDS = 5
LAMBDA_GRID = np.round(np.linspace(0.0, 1.0, 401), 4)
_EPSILON = 1e-6


def _logit(scores: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    clipped = np.clip(scores.astype(np.float64), _EPSILON, 1 - _EPSILON)
    result: npt.NDArray[np.float64] = np.log(clipped / (1 - clipped))
    return result


class GenreMaps:
    """Per-genre maps from raw to calibrated score."""

    def __init__(
        self,
        methods: Sequence[Method],
        platt: npt.NDArray[np.float64],
        knots: Sequence[Sequence[float]],
        values: Sequence[Sequence[float]],
    ) -> None:
        self.methods = tuple(methods)
        self.platt = platt
        """Shape (genres, 2): slope and intercept on the raw log-odds (1, 0 where unused)."""
        self.knots = tuple(tuple(k) for k in knots)
        self.values = tuple(tuple(v) for v in values)
        """Isotonic knots and values per genre (empty where unused)."""
        # One np.interp call serves every isotonic genre: genre i's knots are shifted by
        # 2 * i, so that the genres' segments never overlap.
        self._isotonic = [i for i, m in enumerate(self.methods) if m == "isotonic"]
        self._raw = [i for i, m in enumerate(self.methods) if m == "none"]
        self._shift = np.asarray([2.0 * i for i in self._isotonic])
        self._knots = np.concatenate(
            [[0.0]] + [np.add(self.knots[i], 2.0 * i) for i in self._isotonic]
        )[1:]
        self._values = np.concatenate([[0.0]] + [self.values[i] for i in self._isotonic])[1:]

    def apply(self, raw: Floats) -> Floats:
        """Calibrated scores, same shape as `raw` (one row or many)."""
        calibrated = 1.0 / (1.0 + np.exp(-(self.platt[:, 0] * _logit(raw) + self.platt[:, 1])))
        if self._isotonic:
            columns = raw[..., self._isotonic].astype(np.float64) + self._shift
            calibrated[..., self._isotonic] = np.interp(columns, self._knots, self._values)
        if self._raw:
            calibrated[..., self._raw] = raw[..., self._raw]
        result: Floats = calibrated.astype(np.float32)
        return result

    @classmethod
    def fit(cls, raw: Floats, labels: Bools, known: Bools | None = None) -> GenreMaps:
        """Isotonic or Platt per genre, chosen by the number of examples; a genre with a
        single class in `labels` keeps its raw score ("none"). With `known`, each genre
        learns only from the movies whose sources can express it."""
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        genres = raw.shape[1]
        methods: list[Method] = []
        platt = np.tile([1.0, 0.0], (genres, 1))
        knots: list[tuple[float, ...]] = []
        values: list[tuple[float, ...]] = []
        for g in range(genres):
            rows = known[:, g] if known is not None else slice(None)
            truth, scores = labels[rows, g], raw[rows, g]
            positives = int(truth.sum())
            negatives = len(truth) - positives
            if positives == 0 or negatives == 0:
                methods.append("none")
                knots.append(())
                values.append(())
            elif len(truth) >= ISOTONIC_MIN_EXAMPLES and min(positives, negatives) >= (
                ISOTONIC_MIN_CLASS
            ):
                regression = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
                regression.fit(scores.astype(np.float64), truth.astype(np.float64))
                x = np.round(np.concatenate([[0.0], regression.X_thresholds_, [1.0]]), 6)
                y = np.round(
                    np.concatenate(
                        [[regression.y_thresholds_[0]], regression.y_thresholds_,
                         [regression.y_thresholds_[-1]]]
                    ),
                    6,
                )  # fmt: skip
                # strictly rising knots, as JSON keeps them: of knots equal once rounded
                # (or repeated by the ends added above), the last one stays
                keep = np.append(np.diff(x) > 0, True)
                knots.append(tuple(x[keep].tolist()))
                values.append(tuple(y[keep].tolist()))
                methods.append("isotonic")
            else:
                regression = LogisticRegression(C=1e4, max_iter=1000)
                regression.fit(_logit(scores)[:, None], truth)
                platt[g] = [float(regression.coef_[0, 0]), float(regression.intercept_[0])]
                methods.append("platt")
                knots.append(())
                values.append(())
        return cls(tuple(methods), platt, tuple(knots), tuple(values))

    def to_json(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "platt": np.round(self.platt, 6).tolist(),
            "isotonic_knots": [list(k) for k in self.knots],
            "isotonic_values": [list(v) for v in self.values],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], genres: int) -> GenreMaps:
        methods = tuple(data["methods"])
        platt = np.asarray(data["platt"], np.float64)
        knots = tuple(tuple(float(x) for x in k) for k in data["isotonic_knots"])
        values = tuple(tuple(float(v) for v in vs) for vs in data["isotonic_values"])
        if not (len(methods) == len(knots) == len(values) == genres) or platt.shape != (
            genres,
            2,
        ):
            raise ValueError(f"calibration is not for {genres} genres")
        for method, k, v in zip(methods, knots, values, strict=True):
            if method not in ("isotonic", "platt", "none"):
                raise ValueError(f"unknown calibration method {method!r}")
            if method == "isotonic" and (
                len(k) != len(v)
                or len(k) < 2
                or k[0] != 0.0
                or k[-1] != 1.0
                or any(b <= a for a, b in itertools.pairwise(k))
                or any(b < a for a, b in itertools.pairwise(v))
                or not all(0.0 <= x <= 1.0 for x in v)
            ):
                raise ValueError("isotonic knots must rise from 0 to 1 with rising values")
        return cls(cast("tuple[Method, ...]", methods), platt, knots, values)


CONFIDENCE_FEATURES = (
    "top score",
    "top score log-odds",
    "margin over the second",
    "top-3 sum",
    "sum",
    "entropy of the normalised scores",
)
MIN_CONFIDENCE_EXAMPLES = 200  # of each kind, right and wrong, to learn a confidence from
TOP_SCORE = "top calibrated score"


def confidence_features(scores: Floats) -> npt.NDArray[np.float64]:
    """CONFIDENCE_FEATURES of each row of calibrated scores, shape (n, 6): what the whole
    score vector says about its top genre (a clear winner, or several close ones)."""
    scores = np.atleast_2d(scores).astype(np.float64)
    ranked = -np.sort(-scores, axis=1)
    top = ranked[:, 0]
    total = scores.sum(axis=1)
    shares = scores / np.maximum(total, _EPSILON)[:, None]
    entropy = -(shares * np.log(np.clip(shares, _EPSILON, 1.0))).sum(axis=1)
    second = ranked[:, 1] if scores.shape[1] > 1 else np.zeros_like(top)
    return np.column_stack(
        [top, _logit(top), top - second, ranked[:, :3].sum(axis=1), total, entropy]
    )


@dataclass(frozen=True)
class LearnedConfidence:
    """P(top genre right | CONFIDENCE_FEATURES of the calibrated scores): a logistic
    regression, served as its coefficients (standardisation folded in)."""

    coefficients: tuple[float, ...]
    intercept: float
    movies: int
    """How many movies (right or wrong top genre) it was fitted on."""
    fitted_on: str

    def apply(self, scores: Floats) -> Floats:
        """The confidence of each row of calibrated `scores` (shape (n,))."""
        logits = confidence_features(scores) @ np.asarray(self.coefficients) + self.intercept
        # clipped: a degenerate fit (say, a model whose scores never change) must not
        # overflow; the probability is 1 or 0 to float32 precision well before 50
        result: Floats = (1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))).astype(np.float32)
        return result

    @classmethod
    def fit(
        cls, scores: Floats, labels: Bools, known: Bools | None, fitted_on: str
    ) -> LearnedConfidence | None:
        """Fit on calibrated `scores` of movies with genres `labels`: each movie whose top
        genre its sources can name (`known`) and that has a genre is one example, right or
        wrong (as hit@1 counts it). None when there are fewer than MIN_CONFIDENCE_EXAMPLES
        right or wrong answers."""
        from sklearn.linear_model import LogisticRegression

        top = scores.argmax(axis=1)
        counted = labels.any(axis=1)
        if known is not None:
            counted &= known[np.arange(len(known)), top]
        hits = top_hits(scores[counted], labels[counted])
        if min(int(hits.sum()), int((~hits).sum())) < MIN_CONFIDENCE_EXAMPLES:
            return None
        features = confidence_features(scores[counted])
        mean, scale = features.mean(axis=0), features.std(axis=0)
        scale[scale < _EPSILON] = 1.0  # a (nearly) constant feature says nothing
        regression = LogisticRegression(C=1.0, max_iter=3000)
        regression.fit((features - mean) / scale, hits)
        weights = regression.coef_[0] / scale
        intercept = float(regression.intercept_[0]) - float(weights @ mean)
        return cls(tuple(float(w) for w in weights), intercept, int(counted.sum()), fitted_on)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "logistic regression",
            "features": list(CONFIDENCE_FEATURES),
            "coefficients": [round(w, 8) for w in self.coefficients],
            "intercept": round(self.intercept, 8),
            "movies": self.movies,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedConfidence | None:
        """None for the top calibrated score (or a block an older tgplus wrote)."""
        if data.get("method") != "logistic regression":
            return None
        if list(data["features"]) != list(CONFIDENCE_FEATURES):
            raise ValueError(f"unknown confidence features {data['features']!r}")
        coefficients = tuple(float(w) for w in data["coefficients"])
        if len(coefficients) != len(CONFIDENCE_FEATURES):
            raise ValueError("confidence coefficients do not match its features")
        return cls(
            coefficients, float(data["intercept"]), int(data["movies"]), str(data["fitted_on"])
        )


def top_scores(scores: Floats) -> Floats:
    """The confidence without a learned one: each row's top calibrated score (shape (n,))."""
    top: Floats = np.atleast_2d(scores).max(axis=1)
    return top


def top_hits(scores: Floats, labels: Bools) -> Bools:
    """Per movie: its top-scored genre is one of its genres."""
    hits: Bools = labels[np.arange(len(labels)), scores.argmax(axis=1)]
    return hits


def confidence_threshold(
    confidence: Floats,
    hits: Bools,
    target_precision: float,
    level: float = DEFAULT_CONFIDENCE_LEVEL,
) -> float:
    """The lowest confidence threshold at which, with probability `level`, the movies
    answered (confidence >= it) have their top genre right at least `target_precision` of
    the time; above 1 (never confident) when no threshold can be shown to reach it.

    The candidates are the thresholds answering 10%, 20%, ... of these movies (at least
    MIN_ANSWERED): their choice does not depend on which answers were right. Each is
    tested with an exact one-sided binomial test of "precision below the target" at
    `(1 - level) / candidates` (Bonferroni, as in Learn then Test, Angelopoulos et al.
    2021), so that the chance that any kept threshold misses the target is at most
    `1 - level`; the lowest kept one is chosen. Picking the lowest threshold whose own
    bound passes, among many, would miss more often than `1 - level`; a fixed-sequence
    test (stop at the first failure from the top) has more power in theory but gives up
    at the top, where isotonic steps tie the most confident movies (tried on the shared
    data: never confident at target 0.85 on unseen Netflix movies).
    """
    from scipy.stats import binom

    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    right = np.cumsum(hits[order])
    counts = [math.ceil(share * len(ranked)) for share in ANSWERED_SHARES]
    candidates = sorted(
        {
            float(ranked[max(n, MIN_ANSWERED) - 1])
            for n in counts
            if max(n, MIN_ANSWERED) <= len(ranked)
        }
    )
    chosen = 1.01
    for threshold in reversed(candidates):
        # ties: every movie scoring exactly the threshold is answered too
        answered = int(np.searchsorted(-ranked, -threshold, side="right"))
        p_value = binom.sf(right[answered - 1] - 1, answered, target_precision)
        if p_value <= (1.0 - level) / len(candidates):
            chosen = threshold
    return chosen


def recall_sets(scores: Floats, threshold: float) -> Bools:
    """The top genre plus every genre at or above `threshold`."""
    chosen = scores >= threshold
    chosen[np.arange(len(scores)), scores.argmax(axis=1)] = True
    return chosen


def missed_share(scores: Floats, labels: Bools, thresholds: Sequence[float]) -> Floats:
    """Per threshold, the mean share of each movie's genres its set leaves out
    (movies without a known genre left out)."""
    counted = labels.any(axis=1)
    labels, scores = labels[counted], scores[counted]
    truth = labels.sum(axis=1)
    risks = [
        float(np.mean(1.0 - (recall_sets(scores, t) & labels).sum(axis=1) / truth))
        if len(labels)
        else 1.0
        for t in thresholds
    ]
    return np.asarray(risks, np.float32)


@dataclass(frozen=True)
class Calibration:
    """Everything fitted on the validation share that the served model needs."""

    maps: GenreMaps
    target_precision: float
    threshold: float
    """The confidence at or above which a prediction is `confident`."""
    confidence_level: float | None
    """How sure the threshold is to reach `target_precision` (None: a point estimate, as
    models saved before the bound was introduced chose it)."""
    lambdas: tuple[float, ...]
    risks: tuple[float, ...]
    """The validation share's missed-genre share at each `lambdas` threshold."""
    movies: int
    """How many validation movies the risk curve was measured on."""
    confidence: LearnedConfidence | None = None
    """The learned confidence; None: the top genre's calibrated score (models saved before
    it, and models without out-of-source scores to learn it from)."""

    def confidences(self, scores: Floats) -> Floats:
        """The confidence of each row of calibrated `scores` (shape (n,)): the probability
        that its top genre is right."""
        return (top_scores if self.confidence is None else self.confidence.apply)(scores)

    def recall_threshold(self, target: float) -> float:
        """The conformal risk control threshold for an expected recall of `target`."""
        if not 0.0 < target < 1.0:
            raise InputError(
                f"recall_target {target} is out of range; use a number between 0 and 1"
            )
        alpha = 1.0 - target
        n = self.movies
        allowed = [
            lam for lam, risk in zip(self.lambdas, self.risks, strict=True)
            if (n * risk + 1.0) / (n + 1.0) <= alpha
        ]  # fmt: skip
        return max(allowed) if allowed else 0.0

    @classmethod
    def fit(
        cls,
        raw: Floats,
        labels: Bools,
        *,
        known: Bools | None = None,
        target_precision: float = DEFAULT_TARGET_PRECISION,
        confidence_level: float = DEFAULT_CONFIDENCE_LEVEL,
        confidence: Callable[[GenreMaps], LearnedConfidence | None] | None = None,
        folds: int = FOLDS,
        seed: int = 0,
    ) -> Calibration:
        """Fit on validation scores `raw` and genres `labels` (see the module docstring).

        With `known` (partial labels), a genre a movie's sources cannot express counts
        neither way: calibration skips the cell, abstention skips movies whose top genre
        is such a genre, and recall counts only the genres the source could name.
        `confidence`, given the fitted maps, learns the confidence (see
        `LearnedConfidence.fit`); without it (or when it gives None) the confidence is
        the top calibrated score. The threshold is chosen on that confidence."""
        if not 0.0 < target_precision < 1.0:
            raise ModelError(
                f"target precision {target_precision} is out of range; use a number between 0 and 1"
            )
        if not 0.0 < confidence_level < 1.0:
            raise ModelError(
                f"confidence level {confidence_level} is out of range; use a number between 0 and 1"
            )
        if len(raw) < 2 * folds:
            raise ModelError(
                f"only {len(raw)} validation movies, too few to calibrate; use more data or a "
                "larger --validation-share"
            )
        maps = GenreMaps.fit(raw, labels, known)
        learned = confidence(maps) if confidence is not None else None
        fold = np.random.default_rng(seed).permutation(len(raw)) % folds
        held_out = np.empty_like(raw)
        for k in range(folds):
            inside = fold != k
            part = GenreMaps.fit(
                raw[inside], labels[inside], None if known is None else known[inside]
            )
            held_out[~inside] = part.apply(raw[~inside])
        top = held_out.argmax(axis=1)
        counted = labels.any(axis=1)
        if known is not None:
            counted &= known[np.arange(len(known)), top]
        threshold = confidence_threshold(
            (top_scores if learned is None else learned.apply)(held_out[counted]),
            top_hits(held_out[counted], labels[counted]),
            target_precision,
            confidence_level,
        )
        if threshold > 1.0:
            log.warning(
                "no confidence threshold shows a top-genre precision of %s with probability %s "
                "on these %d validation movies, so no prediction will be confident; a lower "
                "target precision or confidence level (`tgplus train --target-precision`, "
                "`--confidence-level`) or more data would give one",
                target_precision,
                confidence_level,
                int(counted.sum()),
            )
        risks = missed_share(held_out, labels, LAMBDA_GRID.tolist())
        return cls(
            maps=maps,
            target_precision=target_precision,
            threshold=round(threshold, 6),
            confidence_level=confidence_level,
            lambdas=tuple(LAMBDA_GRID.tolist()),
            risks=tuple(np.round(risks, 6).tolist()),
            movies=int(labels.any(axis=1).sum()),
            confidence=learned,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "fitted_on": "validation",
            "maps": self.maps.to_json(),
            "target_precision": self.target_precision,
            "confidence_threshold": self.threshold,
            "confidence_level": self.confidence_level,
            "confidence": (
                self.confidence.to_json()
                if self.confidence is not None
                else {
                    "method": TOP_SCORE,
                    "why": "no out-of-source scores of training movies to learn it from "
                    "(one source file, --threshold-folds 0, or too few right or wrong answers)",
                }
            ),
            "recall_control": {
                "method": "conformal risk control (crc), loss = share of genres missed",
                "movies": self.movies,
                "lambdas": list(self.lambdas),
                "risks": list(self.risks),
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], genres: int) -> Calibration:
        """Rebuild from `to_json`'s output; ValueError/KeyError/TypeError when malformed."""
        control = data["recall_control"]
        lambdas = tuple(float(x) for x in control["lambdas"])
        risks = tuple(float(x) for x in control["risks"])
        if len(lambdas) != len(risks) or not lambdas:
            raise ValueError("recall control has mismatched lambdas and risks")
        movies = int(control["movies"])
        if movies < 1:
            raise ValueError("recall control was measured on no movies")
        return cls(
            maps=GenreMaps.from_json(data["maps"], genres),
            target_precision=float(data["target_precision"]),
            threshold=float(data["confidence_threshold"]),
            confidence_level=(
                None if data.get("confidence_level") is None else float(data["confidence_level"])
            ),
            lambdas=lambdas,
            risks=risks,
            movies=movies,
            confidence=LearnedConfidence.from_json(data.get("confidence") or {}),
        )
