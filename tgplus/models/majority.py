"""The `majority` baseline: every description gets the training set's genre frequencies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tgplus.errors import ModelError
from tgplus.models.base import GenreModel, Labels, ModelState, Scores


class MajorityModel(GenreModel):
    """Scores each genre by its share of training movies; the top is always the commonest."""

    kind = "majority"

    def fit(
        self,
        texts: Sequence[str],
        labels: Labels,
        genres: Sequence[str],
        known: Labels | None = None,
    ) -> MajorityModel:
        self.genres_ = tuple(genres)
        told = known.sum(axis=0) if known is not None else np.full(labels.shape[1], len(labels))
        self.prior_ = (labels.sum(axis=0) / np.maximum(told, 1)).astype(np.float32)
        return self

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        return np.tile(self.prior_, (len(texts), 1))

    def get_state(self) -> ModelState:
        return ModelState(arrays={"prior": self.prior_})

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> MajorityModel:
        prior = state.array("prior")
        if prior.shape != (len(genres),):
            raise ModelError("the model's genre frequencies do not match its genres; retrain it")
        model = cls()
        model.genres_ = tuple(genres)
        model.prior_ = prior.astype(np.float32)
        return model
