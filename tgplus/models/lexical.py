"""The `fast` kind: TF-IDF features and per-genre logistic regression, numpy only at prediction.

`LexicalFeatures` is also the lexical half of the `accurate` kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from tgplus.errors import ModelError
from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.linear import LinearHead, sigmoid
from tgplus.models.text import IndexArray, TfidfBlock, TfidfSettings

DEFAULT_BLOCKS = (TfidfSettings(analyzer="word", ngram_min=1, ngram_max=2, min_df=2),)


def _pack_terms(terms: list[str]) -> npt.NDArray[np.uint8]:
    # Terms never contain a newline (they are made of word characters and spaces),
    # so one newline-joined UTF-8 buffer stores a vocabulary compactly without pickle.
    return np.frombuffer("\n".join(terms).encode("utf-8"), dtype=np.uint8)


def _unpack_terms(packed: npt.NDArray[Any]) -> list[str]:
    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise ModelError("the model's vocabulary is not a byte array; retrain the model")
    return bytes(packed).decode("utf-8").split("\n") if packed.size else []


class LexicalFeatures:
    """Several TF-IDF blocks side by side (each l2-normalised on its own)."""

    def __init__(self, *, blocks: Sequence[TfidfSettings] = DEFAULT_BLOCKS) -> None:
        self.blocks = tuple(blocks)

    def fit(self, texts: Sequence[str]) -> LexicalFeatures:
        self.blocks_ = [TfidfBlock(settings=settings).fit(texts) for settings in self.blocks]
        self.offsets_ = np.cumsum([0] + [block.size for block in self.blocks_]).tolist()
        return self

    @property
    def size(self) -> int:
        return int(self.offsets_[-1])

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        blocks = [block.transform(texts) for block in self.blocks_]
        matrix: sparse.csr_matrix = sparse.hstack(blocks, format="csr")
        return matrix

    def transform_one(self, text: str) -> tuple[IndexArray, npt.NDArray[np.float32]]:
        """Indices (into the concatenated features) and weights of one text."""
        parts = [block.transform_one(text) for block in self.blocks_]
        if len(parts) == 1:
            return parts[0]
        indices = np.concatenate(
            [part[0] + offset for part, offset in zip(parts, self.offsets_, strict=False)]
        )
        return indices.astype(np.int32, copy=False), np.concatenate([part[1] for part in parts])

    def get_state(self, prefix: str = "lexical") -> ModelState:
        state = ModelState(
            settings={"blocks": [block.settings.to_dict() for block in self.blocks_]}
        )
        for i, block in enumerate(self.blocks_):
            state.arrays[f"{prefix}_terms_{i}"] = _pack_terms(block.terms_)
            state.arrays[f"{prefix}_idf_{i}"] = block.idf_
        return state

    @classmethod
    def from_state(cls, state: ModelState, prefix: str = "lexical") -> LexicalFeatures:
        settings = [TfidfSettings.from_dict(values) for values in state.settings["blocks"]]
        features = cls(blocks=settings)
        features.blocks_ = []
        for i, block_settings in enumerate(settings):
            terms = _unpack_terms(state.array(f"{prefix}_terms_{i}"))
            idf = state.array(f"{prefix}_idf_{i}")
            if idf.shape != (len(terms),):
                raise ModelError(
                    f"the model's vocabulary {i} has {len(terms)} terms but {idf.shape} weights; "
                    "the file is damaged, retrain the model"
                )
            features.blocks_.append(TfidfBlock.from_state(block_settings, terms, idf))
        features.offsets_ = np.cumsum([0] + [b.size for b in features.blocks_]).tolist()
        return features


def load_head(state: ModelState, prefix: str, features: int, genres: int) -> LinearHead:
    coef, intercept = state.array(f"{prefix}_coef"), state.array(f"{prefix}_intercept")
    if coef.shape != (features, genres) or intercept.shape != (genres,):
        raise ModelError(
            f"the model's {prefix} weights have shape {coef.shape}, expected {(features, genres)}; "
            "the file is damaged, retrain the model"
        )
    return LinearHead.from_arrays(coef, intercept)


class FastModel(GenreModel):
    """TF-IDF word n-grams and one-vs-rest logistic regression."""

    kind = "fast"

    def __init__(
        self,
        *,
        blocks: Sequence[TfidfSettings] = DEFAULT_BLOCKS,
        c: float = 4.0,
        class_weight: str | None = None,
        n_jobs: int = 2,
    ) -> None:
        self.blocks = tuple(blocks)
        self.c = c
        self.class_weight = class_weight
        self.n_jobs = n_jobs

    def fit(self, texts: Sequence[str], labels: Labels, genres: Sequence[str]) -> FastModel:
        self.genres_ = tuple(genres)
        self.features_ = LexicalFeatures(blocks=self.blocks).fit(texts)
        self.head_ = LinearHead(c=self.c, class_weight=self.class_weight, n_jobs=self.n_jobs)
        self.head_.fit(self.features_.transform(texts), labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        return sigmoid(self.head_.decision(self.features_.transform(texts)))

    def predict_proba_one(self, text: str) -> npt.NDArray[np.float32]:
        indices, weights = self.features_.transform_one(text)
        return sigmoid(self.head_.decision_sparse_one(indices, weights) + self.head_.intercept_)

    def get_state(self) -> ModelState:
        state = self.features_.get_state()
        state.arrays["lexical_coef"] = self.head_.coef_
        state.arrays["lexical_intercept"] = self.head_.intercept_
        state.settings["head"] = self.head_.describe()
        return state

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> FastModel:
        features = LexicalFeatures.from_state(state)
        model = cls(blocks=features.blocks)
        model.genres_ = tuple(genres)
        model.features_ = features
        model.head_ = load_head(state, "lexical", features.size, len(genres))
        return model

    def describe(self) -> dict[str, Any]:
        return {
            "blocks": [block.to_dict() for block in self.blocks],
            "C": self.c,
            "class_weight": self.class_weight,
        }
