"""The `accurate` kind: the `fast` scorers plus two that read sentence embeddings.

Five probabilities per genre, averaged with fixed weights:
the fast model's three light scorers (TF-IDF logistic regression, Complement
NB, static word pieces), a logistic regression on all-MiniLM-L6-v2 sentence
embeddings (or any sentence-transformers encoder), and the similarity-weighted
genres of the 30 nearest training movies in that embedding space. Words and
meaning err differently, so the blend beats each part. The weights came from
5-fold cross-validation on the two TMDB files; `bench/tune.py --kind accurate`,
folding whole catalogues of every shared file, scores them at hit@1 0.755 out
of fold and the best settings and weights it finds at 0.757, within noise, so
they stay. On held-out catalogues this kind is 1.3 points of hit@1 above
`fast`, short of the 2 it would need to earn its cost; an MLP head, other
neighbour weightings, a joint TF-IDF and embedding regression and a stacked
blender on the same frozen embeddings gained at most 0.2 more (README, "How
good, how fast").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.errors import ModelError
from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.embeddings import DEFAULT_ENCODER, Encoder, Vectors
from tgplus.models.explain import TokenWeights
from tgplus.models.knn import load_neighbours, neighbour_scores
from tgplus.models.lexical import (
    LightScorers,
    blend,
    load_head,
    normalised_weights,
    save_head,
)
from tgplus.models.linear import LinearHead, sigmoid

DEFAULT_WEIGHTS = {
    "logistic": 0.10,
    "naive_bayes": 0.30,
    "static": 0.15,
    "embedding": 0.25,
    "neighbours": 0.20,
}


class AccurateModel(GenreModel):
    """The light scorers plus embedding logistic regression and weighted neighbours."""

    kind = "accurate"
    needs_embeddings = True

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        embedding_c: float = 3.0,
        k: int = 30,
        power: float = 2.0,
        weights: dict[str, float] | None = None,
        n_jobs: int = 2,
        progress: bool = False,
    ) -> None:
        self.encoder = encoder
        self.embedding_c = embedding_c
        self.k = k
        self.power = power
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.n_jobs = n_jobs
        self.progress = progress

    def fit(
        self,
        texts: Sequence[str],
        labels: Labels,
        genres: Sequence[str],
        known: Labels | None = None,
    ) -> AccurateModel:
        self.genres_ = tuple(genres)
        self.scorers_ = LightScorers(encoder=self.encoder, n_jobs=self.n_jobs).fit(
            texts, labels, known
        )
        self.encoder_ = Encoder(self.encoder, progress=self.progress)
        self.vectors_ = self.encoder_.encode(texts)
        self.labels_ = labels.astype(bool)
        self.known_ = None if known is None or known.all() else known.astype(bool)
        self.embedding_ = LinearHead(c=self.embedding_c, n_jobs=self.n_jobs)
        self.embedding_.fit(self.vectors_, labels, self.known_)
        return self

    def _embedding_probabilities(self, vectors: Vectors) -> dict[str, Scores]:
        return {
            "embedding": sigmoid(self.embedding_.decision(vectors)),
            "neighbours": neighbour_scores(
                vectors, self.vectors_, self.labels_, self.k, self.power, self.known_
            ),
        }

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        found = self.scorers_.probabilities(texts)
        found.update(self._embedding_probabilities(self.encoder_.encode(texts)))
        return blend(found, self.weights)

    def predict_proba_one(self, text: str) -> npt.NDArray[np.float32]:
        found = self.scorers_.probabilities_one(text)
        vectors = self.encoder_.encode([text])
        found.update({name: p[0] for name, p in self._embedding_probabilities(vectors).items()})
        return blend(found, self.weights)

    def explain_one(self, text: str, raw: npt.NDArray[np.float32] | None = None) -> TokenWeights:
        """The light scorers' words only: the embedding and neighbour parts have no exact
        per-word split, and leaving words out one at a time would cost an encoder run per
        word. Their share of the score stays in the baseline (method "exact-parts-only")."""
        names = list(self.weights)
        mixing = dict(zip(names, normalised_weights(names, self.weights).tolist(), strict=True))
        if raw is None:
            raw = self.predict_proba_one(text)  # an encoder run: callers pass it when they have it
        return self.scorers_.explain_one(text, mixing, raw, "exact-parts-only")

    def get_state(self) -> ModelState:
        state = self.scorers_.get_state()
        save_head(state, "embedding", self.embedding_)
        state.arrays.update(vectors=self.vectors_, labels=self.labels_)
        if self.known_ is not None:
            state.arrays["known"] = self.known_
        state.settings.update(
            weights=self.weights, embedding_C=self.embedding_c, k=self.k, power=self.power
        )
        return state

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> AccurateModel:
        scorers = LightScorers.from_state(state, len(genres))
        model = cls(
            encoder=scorers.encoder,
            embedding_c=float(state.settings["embedding_C"]),
            k=int(state.settings["k"]),
            power=float(state.settings["power"]),
            weights=state.settings["weights"],
        )
        model.genres_ = tuple(genres)
        model.scorers_ = scorers
        model.encoder_ = Encoder(model.encoder)
        model.vectors_, model.labels_ = load_neighbours(state, len(genres))
        known = state.arrays.get("known")
        if known is not None and known.shape != model.labels_.shape:
            raise ModelError("the model's label mask does not match its labels; retrain it")
        model.known_ = known.astype(bool) if known is not None else None
        dimension = model.vectors_.shape[1]
        model.embedding_ = load_head(state, "embedding", dimension, len(genres))
        return model

    def describe(self) -> dict[str, Any]:
        described = self.scorers_.describe() if hasattr(self, "scorers_") else {}
        return {
            **described,
            "encoder": self.encoder,
            "embedding_C": self.embedding_c,
            "neighbours": {"k": self.k, "similarity_power": self.power},
            "weights": self.weights,
        }
