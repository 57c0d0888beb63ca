"""The `accurate` kind: `fast` averaged with a genre head on fine-tuned MiniLM.

Half of every probability is the fast model's blend of its three light
scorers (TF-IDF logistic regression, Complement NB, static word pieces, with
fast's weights); the other half is a linear genre head on all-MiniLM-L6-v2
fine-tuned under it for one pass over the training films
(`tgplus.models.finetuned`). Words and meaning err differently, so the blend
beats each part. Measured on catalogues the model never saw
(`bench/finetune.py`, README "How good, how fast"), it is the first variant
that beats `fast` clearly; the previous `accurate` (logistic regression and
nearest neighbours on frozen MiniLM embeddings) gained 1.3 points of hit@1.

Fitting costs a fine-tuning pass (about 20 minutes on 2 CPU cores for every
shared file; cached by data, see `FineTunedHead`), so this kind tunes its
thresholds on the validation share: out-of-source thresholds would fine-tune
three more times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.embeddings import DEFAULT_ENCODER
from tgplus.models.explain import TokenWeights
from tgplus.models.finetuned import FineTunedHead
from tgplus.models.lexical import (
    DEFAULT_WEIGHTS as FAST_WEIGHTS,
)
from tgplus.models.lexical import (
    LightScorers,
    blend,
    normalised_weights,
)

FINE_TUNED_SHARE = 0.5
DEFAULT_WEIGHTS = {
    **{name: (1 - FINE_TUNED_SHARE) * weight for name, weight in FAST_WEIGHTS.items()},
    "fine_tuned": FINE_TUNED_SHARE,
}


class AccurateModel(GenreModel):
    """The light scorers of `fast` and a genre head on fine-tuned MiniLM, half and half."""

    kind = "accurate"
    needs_embeddings = True
    refits_cheaply = False

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        weights: dict[str, float] | None = None,
        n_jobs: int = 2,
        progress: bool = False,
    ) -> None:
        self.encoder = encoder
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
        self.fine_tuned_ = FineTunedHead(encoder=self.encoder, progress=self.progress).fit(
            texts, labels, known
        )
        return self

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        found = self.scorers_.probabilities(texts)
        found["fine_tuned"] = self.fine_tuned_.probabilities(texts)
        return blend(found, self.weights)

    def predict_proba_one(self, text: str) -> npt.NDArray[np.float32]:
        found = self.scorers_.probabilities_one(text)
        found["fine_tuned"] = self.fine_tuned_.probabilities([text])[0]
        return blend(found, self.weights)

    def explain_one(self, text: str, raw: npt.NDArray[np.float32] | None = None) -> TokenWeights:
        """The light scorers' words only: the fine-tuned head has no exact per-word split,
        and leaving words out one at a time would cost an encoder run per word. Its share
        of the score stays in the baseline (method "exact-parts-only")."""
        names = list(self.weights)
        mixing = dict(zip(names, normalised_weights(names, self.weights).tolist(), strict=True))
        if raw is None:
            raw = self.predict_proba_one(text)  # an encoder run: callers pass it when they have it
        return self.scorers_.explain_one(text, mixing, raw, "exact-parts-only")

    def get_state(self) -> ModelState:
        state = self.scorers_.get_state()
        self.fine_tuned_.save(state)
        state.settings.update(weights=self.weights)
        return state

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> AccurateModel:
        fine_tuned = FineTunedHead.load(state, len(genres))  # first: it names an old model
        scorers = LightScorers.from_state(state, len(genres))
        model = cls(encoder=scorers.encoder, weights=state.settings["weights"])
        model.genres_ = tuple(genres)
        model.scorers_ = scorers
        model.fine_tuned_ = fine_tuned
        return model

    def describe(self) -> dict[str, Any]:
        described = self.scorers_.describe() if hasattr(self, "scorers_") else {}
        return {
            **described,
            "encoder": self.encoder,
            "fine_tuning": FineTunedHead(encoder=self.encoder).describe(),
            "weights": self.weights,
        }
