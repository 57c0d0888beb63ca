"""Per-genre linear scorers kept as plain arrays: logistic regression and Complement NB.

scikit-learn fits them; prediction is a matrix product and a sigmoid, done with
numpy so a served model needs neither scikit-learn nor its per-call overhead.
Coefficients are stored features-by-genres so one text gathers only the rows
of the features it has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.special import expit

from tgplus.models.base import Labels

Matrix = sparse.csr_matrix | npt.NDArray[np.float32]


def sigmoid(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The logistic function, as one ufunc call (no overflow, float32 stays float32)."""
    result: npt.NDArray[np.float32] = expit(values)
    return result


class LinearHead:
    """Per-genre log-odds `features @ coef_ + intercept_`; coef_ is (features, genres)."""

    coef_: npt.NDArray[np.float32]
    intercept_: npt.NDArray[np.float32]

    def __init__(self, *, c: float = 1.0, n_jobs: int = 2) -> None:
        self.c = c
        self.n_jobs = n_jobs

    def fit(self, features: Matrix, labels: Labels, known: Labels | None = None) -> LinearHead:
        """One-vs-rest logistic regression (`logistic_regression`: liblinear on sparse
        input, lbfgs on dense).

        With `known` (partial labels), genre g is fitted only on the rows where
        `known[:, g]`: a row whose source cannot name g is neither a positive
        nor a negative example of it.
        """
        from sklearn.multiclass import OneVsRestClassifier
        from threadpoolctl import threadpool_limits

        if known is not None and not known.all():
            return self._fit_masked(features, labels, known)
        if (labels.min(axis=0) == labels.max(axis=0)).any():
            # A genre every text has, or none does (a model fitted without the files that
            # name it): OneVsRestClassifier keeps no coefficients for it; _fit_one does.
            return self._fit_masked(features, labels, np.ones_like(labels))
        classifier = OneVsRestClassifier(
            logistic_regression(self.c, features, features.shape[0]), n_jobs=self.n_jobs
        )
        # One BLAS thread per worker: with more, lbfgs on 2 cores ran 5-15x slower.
        with threadpool_limits(1):
            classifier.fit(features, labels.astype(np.int8))
        self.coef_ = np.ascontiguousarray(
            np.vstack([e.coef_.ravel() for e in classifier.estimators_]).T, dtype=np.float32
        )
        self.intercept_ = np.asarray(
            [e.intercept_[0] for e in classifier.estimators_], dtype=np.float32
        )
        return self

    def _fit_masked(self, features: Matrix, labels: Labels, known: Labels) -> LinearHead:
        from joblib import Parallel, delayed
        from threadpoolctl import threadpool_limits

        def one(genre: int) -> tuple[npt.NDArray[np.float32], float]:
            return _fit_one(features, labels[:, genre], known[:, genre], self.c)

        with threadpool_limits(1):
            fitted = Parallel(n_jobs=self.n_jobs)(
                delayed(one)(genre) for genre in range(labels.shape[1])
            )
        self.coef_ = np.ascontiguousarray(np.vstack([c for c, _ in fitted]).T, dtype=np.float32)
        self.intercept_ = np.asarray([i for _, i in fitted], dtype=np.float32)
        return self

    @classmethod
    def from_arrays(cls, coef: npt.NDArray[Any], intercept: npt.NDArray[Any]) -> LinearHead:
        head = cls()
        head.coef_ = np.ascontiguousarray(coef, dtype=np.float32)
        head.intercept_ = np.asarray(intercept, dtype=np.float32)
        return head

    def decision(self, features: Matrix) -> npt.NDArray[np.float32]:
        """Log-odds of every genre, shape (n, genres)."""
        product = features @ self.coef_
        return np.asarray(product, dtype=np.float32) + self.intercept_

    def decision_sparse_one(
        self, indices: npt.NDArray[np.int32], weights: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Log-odds of one text given as (feature indices, weights)."""
        if len(indices) == 0:
            return np.array(self.intercept_, dtype=np.float32)
        rows: npt.NDArray[np.float32] = self.coef_[indices]
        scores: npt.NDArray[np.float32] = weights @ rows + self.intercept_
        return scores


def logistic_regression(c: float, features: Matrix, rows: int) -> Any:
    """An unfitted LogisticRegression for `rows` rows of `features`: liblinear on sparse
    input, in its dual form where there are more features than rows (the same optimum,
    found 5 to 8 times faster on the TF-IDF of the shared data, as scikit-learn's docs
    advise), lbfgs on dense input."""
    from sklearn.linear_model import LogisticRegression

    if sparse.issparse(features):
        dual = features.shape[1] > rows
        return LogisticRegression(C=c, solver="liblinear", dual=dual, max_iter=3000)
    return LogisticRegression(C=c, solver="lbfgs", max_iter=3000)


def _fit_one(
    features: Matrix, truth: Labels, rows: Labels, c: float
) -> tuple[npt.NDArray[np.float32], float]:
    """One genre's logistic regression on the rows that know it; a constant where
    those rows hold one class only (as OneVsRestClassifier does)."""
    chosen = np.flatnonzero(rows)
    y = truth[chosen].astype(np.int8)
    width = features.shape[1]
    if len(chosen) == 0 or y.min() == y.max():
        rate = float(y.mean()) if len(chosen) else 0.0
        rate = min(max(rate, 1e-6), 1 - 1e-6)
        return np.zeros(width, np.float32), float(np.log(rate / (1 - rate)))
    model = logistic_regression(c, features, len(chosen)).fit(features[chosen], y)
    return model.coef_.ravel().astype(np.float32), float(model.intercept_[0])


def complement_nb_head(
    features: sparse.csr_matrix, labels: Labels, alpha: float, known: Labels | None = None
) -> LinearHead:
    """Per-genre Complement Naive Bayes, as the linear log-odds it amounts to.

    For one genre against the rest, scikit-learn's ComplementNB scores a text
    `x @ (log_prob[1] - log_prob[0])` (no class prior), so its probability is
    the sigmoid of a linear function: the same head as logistic regression.
    """
    from sklearn.naive_bayes import ComplementNB

    coef = np.empty((features.shape[1], labels.shape[1]), dtype=np.float32)
    for genre in range(labels.shape[1]):
        masked = known is not None and not known[:, genre].all()
        rows = np.flatnonzero(known[:, genre]) if known is not None and masked else None
        truth = labels[rows, genre] if rows is not None else labels[:, genre]
        if truth.size == 0 or truth.min() == truth.max():  # one class only: no evidence
            coef[:, genre] = 0.0
            continue
        model = ComplementNB(alpha=alpha).fit(
            features[rows] if rows is not None else features, truth.astype(np.int8)
        )
        log_prob = model.feature_log_prob_
        coef[:, genre] = log_prob[1] - log_prob[0]
    return LinearHead.from_arrays(coef, np.zeros(labels.shape[1], dtype=np.float32))
