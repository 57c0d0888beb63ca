"""The `seed-knn` baseline: the original demo's model, kept to show the gain.

all-MiniLM-L6-v2 embeddings and the 5 nearest training movies by cosine
similarity; a genre's score is the share of those neighbours that have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tgplus.errors import ModelError
from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.embeddings import DEFAULT_ENCODER, Encoder


class SeedKnnModel(GenreModel):
    """k-nearest neighbours on sentence embeddings."""

    kind = "seed-knn"
    needs_embeddings = True

    def __init__(
        self, *, k: int = 5, encoder: str = DEFAULT_ENCODER, progress: bool = False
    ) -> None:
        self.k = k
        self.encoder = encoder
        self.progress = progress

    def fit(self, texts: Sequence[str], labels: Labels, genres: Sequence[str]) -> SeedKnnModel:
        self.genres_ = tuple(genres)
        self.encoder_ = Encoder(self.encoder, progress=self.progress)
        self.vectors_ = self.encoder_.encode(texts)
        self.labels_ = labels.astype(bool)
        return self

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        vectors = self.encoder_.encode(texts)
        k = min(self.k, len(self.vectors_))
        scores = np.empty((len(texts), len(self.genres_)), np.float32)
        for start in range(0, len(texts), 512):  # bounded memory for big batches
            similarity = vectors[start : start + 512] @ self.vectors_.T
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            scores[start : start + 512] = self.labels_[nearest].mean(axis=1)
        return scores

    def get_state(self) -> ModelState:
        return ModelState(
            arrays={"vectors": self.vectors_, "labels": self.labels_},
            settings={"k": self.k, "encoder": self.encoder},
        )

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> SeedKnnModel:
        vectors, labels = state.array("vectors"), state.array("labels")
        if labels.shape != (len(vectors), len(genres)) or vectors.ndim != 2:
            raise ModelError("the model's neighbours do not match its genres; retrain it")
        model = cls(k=int(state.settings["k"]), encoder=str(state.settings["encoder"]))
        model.genres_ = tuple(genres)
        model.encoder_ = Encoder(model.encoder)
        model.vectors_ = vectors.astype(np.float32)
        model.labels_ = labels.astype(bool)
        return model

    def describe(self) -> dict[str, Any]:
        return {"k": self.k, "encoder": self.encoder}
