"""The `accurate` kind: the lexical model and sentence embeddings, blended.

Two one-vs-rest logistic regressions, one on TF-IDF features and one on
all-MiniLM-L6-v2 embeddings (or any sentence-transformers encoder), each give
a probability per genre; the blend is their weighted average. The two views
err differently (words vs. meaning), so the average beats either alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.embeddings import DEFAULT_ENCODER, Encoder
from tgplus.models.lexical import DEFAULT_BLOCKS, LexicalFeatures, load_head
from tgplus.models.linear import LinearHead, sigmoid
from tgplus.models.text import TfidfSettings


class AccurateModel(GenreModel):
    """Lexical and embedding logistic regressions, averaged with weight `lexical_weight`."""

    kind = "accurate"
    needs_embeddings = True

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        blocks: Sequence[TfidfSettings] = DEFAULT_BLOCKS,
        lexical_c: float = 4.0,
        embedding_c: float = 4.0,
        lexical_weight: float = 0.5,
        n_jobs: int = 2,
        progress: bool = False,
    ) -> None:
        self.encoder = encoder
        self.blocks = tuple(blocks)
        self.lexical_c = lexical_c
        self.embedding_c = embedding_c
        self.lexical_weight = lexical_weight
        self.n_jobs = n_jobs
        self.progress = progress

    def fit(self, texts: Sequence[str], labels: Labels, genres: Sequence[str]) -> AccurateModel:
        self.genres_ = tuple(genres)
        self.encoder_ = Encoder(self.encoder, progress=self.progress)
        self.features_ = LexicalFeatures(blocks=self.blocks).fit(texts)
        self.lexical_ = LinearHead(c=self.lexical_c, n_jobs=self.n_jobs)
        self.lexical_.fit(self.features_.transform(texts), labels)
        self.embedding_ = LinearHead(c=self.embedding_c, n_jobs=self.n_jobs)
        self.embedding_.fit(self.encoder_.encode(texts), labels)
        return self

    def _blend(
        self, lexical: npt.NDArray[np.float32], embedding: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        w = np.float32(self.lexical_weight)
        blended: npt.NDArray[np.float32] = w * sigmoid(lexical) + (1 - w) * sigmoid(embedding)
        return blended

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        lexical = self.lexical_.decision(self.features_.transform(texts))
        embedding = self.embedding_.decision(self.encoder_.encode(texts))
        return self._blend(lexical, embedding)

    def get_state(self) -> ModelState:
        state = self.features_.get_state()
        state.arrays.update(
            lexical_coef=self.lexical_.coef_,
            lexical_intercept=self.lexical_.intercept_,
            embedding_coef=self.embedding_.coef_,
            embedding_intercept=self.embedding_.intercept_,
        )
        state.settings.update(
            encoder=self.encoder,
            lexical_weight=self.lexical_weight,
            lexical_c=self.lexical_c,
            embedding_c=self.embedding_c,
        )
        return state

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> AccurateModel:
        features = LexicalFeatures.from_state(state)
        model = cls(
            encoder=str(state.settings["encoder"]),
            blocks=features.blocks,
            lexical_c=float(state.settings["lexical_c"]),
            embedding_c=float(state.settings["embedding_c"]),
            lexical_weight=float(state.settings["lexical_weight"]),
        )
        model.genres_ = tuple(genres)
        model.features_ = features
        model.encoder_ = Encoder(model.encoder)
        model.lexical_ = load_head(state, "lexical", features.size, len(genres))
        dimension = state.array("embedding_coef").shape[0]
        model.embedding_ = load_head(state, "embedding", dimension, len(genres))
        return model

    def describe(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "blocks": [block.to_dict() for block in self.blocks],
            "lexical_C": self.lexical_c,
            "embedding_C": self.embedding_c,
            "lexical_weight": self.lexical_weight,
        }
