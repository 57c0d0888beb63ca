"""Nearest neighbours on sentence embeddings: the `seed-knn` baseline (the original demo).

`seed-knn` is the original demo's model: all-MiniLM-L6-v2 embeddings and the 5
nearest training movies by cosine similarity; a genre's score is the share of
those neighbours that have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tgplus.errors import ModelError
from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.embeddings import DEFAULT_ENCODER, Encoder, Vectors

_CHUNK = 512  # queries per similarity block: bounded memory for big batches


def neighbour_scores(queries: Vectors, vectors: Vectors, labels: Labels, k: int) -> Scores:
    """Per genre, the share of the k most similar training vectors that have it."""
    k = min(k, len(vectors))
    scores = np.empty((len(queries), labels.shape[1]), np.float32)
    for start in range(0, len(queries), _CHUNK):
        similarity = queries[start : start + _CHUNK] @ vectors.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        scores[start : start + _CHUNK] = labels[nearest].mean(axis=1)
    return scores


def load_neighbours(state: ModelState, genres: int) -> tuple[Vectors, Labels]:
    vectors, labels = state.array("vectors"), state.array("labels")
    if vectors.ndim != 2 or labels.shape != (len(vectors), genres):
        raise ModelError("the model's neighbours do not match its genres; retrain it")
    return vectors.astype(np.float32), labels.astype(bool)


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

    def fit(
        self,
        texts: Sequence[str],
        labels: Labels,
        genres: Sequence[str],
        known: Labels | None = None,
    ) -> SeedKnnModel:
        """The original demo's model: `known` is ignored (every label counts as given)."""
        self.genres_ = tuple(genres)
        self.encoder_ = Encoder(self.encoder, progress=self.progress)
        self.vectors_ = self.encoder_.encode(texts)
        self.labels_ = labels.astype(bool)
        return self

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        return neighbour_scores(self.encoder_.encode(texts), self.vectors_, self.labels_, self.k)

    def get_state(self) -> ModelState:
        return ModelState(
            arrays={"vectors": self.vectors_, "labels": self.labels_},
            settings={"k": self.k, "encoder": self.encoder},
        )

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> SeedKnnModel:
        model = cls(k=int(state.settings["k"]), encoder=str(state.settings["encoder"]))
        model.genres_ = tuple(genres)
        model.encoder_ = Encoder(model.encoder)
        model.vectors_, model.labels_ = load_neighbours(state, len(genres))
        return model

    def describe(self) -> dict[str, Any]:
        return {"k": self.k, "encoder": self.encoder}
