"""One-vs-rest logistic regression kept as plain arrays.

scikit-learn fits it; prediction is a matrix product and a sigmoid, done with
numpy so a served model needs neither scikit-learn nor its per-call overhead.
Coefficients are stored features-by-genres so one text gathers only the rows
of the features it has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from tgplus.models.base import Labels

Matrix = sparse.csr_matrix | npt.NDArray[np.float32]


def sigmoid(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # Clipped so exp never overflows; the result is a float32 array like the input.
    return (1.0 / (1.0 + np.exp(-np.clip(values, -30.0, 30.0)))).astype(np.float32, copy=False)


class LinearHead:
    """Per-genre logistic regression: `coef_` (features x genres), `intercept_` (genres)."""

    def __init__(self, *, c: float = 1.0, class_weight: str | None = None, n_jobs: int = 1) -> None:
        self.c = c
        self.class_weight = class_weight
        self.n_jobs = n_jobs

    def fit(self, features: Matrix, labels: Labels) -> LinearHead:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        solver = "liblinear" if sparse.issparse(features) else "lbfgs"
        classifier = OneVsRestClassifier(
            LogisticRegression(
                C=self.c, class_weight=self.class_weight, solver=solver, max_iter=1000
            ),
            n_jobs=self.n_jobs,
        )
        classifier.fit(features, labels.astype(np.int8))
        self.coef_ = np.ascontiguousarray(
            np.vstack([e.coef_.ravel() for e in classifier.estimators_]).T, dtype=np.float32
        )
        self.intercept_ = np.asarray(
            [e.intercept_[0] for e in classifier.estimators_], dtype=np.float32
        )
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
        self, indices: npt.NDArray[np.int32], weights: npt.NDArray[np.float32], offset: int = 0
    ) -> npt.NDArray[np.float32]:
        """Log-odds contribution of one text given as (indices, weights), without intercept."""
        if len(indices) == 0:
            return np.zeros(self.coef_.shape[1], np.float32)
        rows: npt.NDArray[np.float32] = self.coef_[indices + offset]
        return weights @ rows

    def describe(self) -> dict[str, Any]:
        return {"C": self.c, "class_weight": self.class_weight}
