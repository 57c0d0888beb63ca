"""Static word-piece embeddings: sentence-embedding meaning without running a transformer.

A text is represented by the mean of its word pieces' *input* embeddings in
all-MiniLM-L6-v2 (the table the transformer starts from), and a logistic
regression per genre reads that mean. Because both steps are linear, the model
keeps only each word piece's projected genre scores (pieces x genres, 2.4 MB):
scoring a text is a WordPiece split and the mean of a few table rows. Unlike
TF-IDF words, pieces carry meaning to words never seen in training.

Training needs the encoder's `vocab.txt` and `model.safetensors` (installed
with `tgplus[embeddings]`, or any local BERT-style model directory);
prediction needs neither.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import sparse

from tgplus.errors import ModelError
from tgplus.models.base import Labels, ModelState
from tgplus.models.embeddings import resolve_encoder
from tgplus.models.linear import LinearHead
from tgplus.models.text import pack_terms, unpack_terms
from tgplus.models.wordpiece import WordPiece

log = logging.getLogger(__name__)

EMBEDDING_TENSOR = "embeddings.word_embeddings.weight"


def load_piece_table(encoder: str) -> tuple[list[str], npt.NDArray[np.float32]] | None:
    """The vocabulary and input-embedding table of a local encoder, or None if not local."""
    directory = Path(resolve_encoder(encoder))
    vocabulary_file, weights_file = directory / "vocab.txt", directory / "model.safetensors"
    if not (vocabulary_file.is_file() and weights_file.is_file()):
        return None
    try:
        from safetensors import safe_open
    except ImportError:
        return None
    vocabulary = vocabulary_file.read_text(encoding="utf-8").splitlines()
    with safe_open(str(weights_file), framework="numpy") as weights:
        names = [n for n in weights.keys() if n.endswith(EMBEDDING_TENSOR)]
        if not names:
            raise ModelError(f"{weights_file}: no {EMBEDDING_TENSOR}; not a BERT-style encoder")
        table = np.asarray(weights.get_tensor(names[0]), dtype=np.float32)
    if table.shape[0] != len(vocabulary):
        raise ModelError(f"{directory}: {len(vocabulary)} pieces but {table.shape[0]} embeddings")
    return vocabulary, table


class StaticEmbeddings:
    """Per-genre log-odds from the mean projected embedding of a text's word pieces."""

    projected_: npt.NDArray[np.float32]
    intercept_: npt.NDArray[np.float32]
    reference_: npt.NDArray[np.float32]
    """The projected mean of an average training text: the point explanations start from."""

    def __init__(self, *, c: float = 100.0, n_jobs: int = 2) -> None:
        self.c = c
        self.n_jobs = n_jobs

    def _piece_means(self, texts: Sequence[str], width: int) -> sparse.csr_matrix:
        """Shape (texts, pieces): 1/n for each of a text's n pieces (repeats add up)."""
        rows, columns, values = [], [], []
        for row, text in enumerate(texts):
            ids = self.tokenizer_.encode(text)
            if not ids:
                continue  # nothing to read (only control characters): the intercept alone
            rows += [row] * len(ids)
            columns += ids
            values += [1.0 / len(ids)] * len(ids)
        return sparse.csr_matrix(
            (np.asarray(values, np.float32), (rows, columns)), shape=(len(texts), width)
        )

    def fit(
        self,
        texts: Sequence[str],
        labels: Labels,
        vocabulary: list[str],
        table: npt.NDArray[np.float32],
        known: Labels | None = None,
    ) -> StaticEmbeddings:
        self.tokenizer_ = WordPiece(vocabulary)
        means = self._piece_means(texts, len(vocabulary))
        head = LinearHead(c=self.c, n_jobs=self.n_jobs).fit(
            np.asarray(means @ table), labels, known
        )
        self.projected_ = np.ascontiguousarray(table @ head.coef_, dtype=np.float32)
        self.intercept_ = head.intercept_
        self.reference_ = np.asarray(means.mean(axis=0) @ self.projected_, np.float32).ravel()
        return self

    def decision(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        means = self._piece_means(texts, len(self.projected_))
        return np.asarray(means @ self.projected_, dtype=np.float32) + self.intercept_

    def decision_one(self, text: str) -> npt.NDArray[np.float32]:
        ids = self.tokenizer_.encode(text)
        if not ids:
            return np.array(self.intercept_, dtype=np.float32)
        total = np.add.reduce(self.projected_[ids], axis=0)  # .mean() costs more on small input
        scores: npt.NDArray[np.float32] = total * np.float32(1.0 / len(ids)) + self.intercept_
        return scores

    def get_state(self, prefix: str = "static") -> ModelState:
        return ModelState(
            arrays={
                f"{prefix}_pieces": pack_terms(self.tokenizer_.vocabulary),
                f"{prefix}_projected": self.projected_,
                f"{prefix}_intercept": self.intercept_,
                f"{prefix}_reference": self.reference_,
            },
            settings={"static_C": self.c},
        )

    @classmethod
    def from_state(cls, state: ModelState, genres: int, prefix: str = "static") -> StaticEmbeddings:
        vocabulary = unpack_terms(state.array(f"{prefix}_pieces"))
        projected = state.array(f"{prefix}_projected")
        intercept = state.array(f"{prefix}_intercept")
        if projected.shape != (len(vocabulary), genres) or intercept.shape != (genres,):
            raise ModelError("the model's word-piece table does not match its genres; retrain it")
        static = cls(c=float(state.settings.get("static_C", 100.0)))
        static.tokenizer_ = WordPiece(vocabulary)
        static.projected_ = np.ascontiguousarray(projected, dtype=np.float32)
        static.intercept_ = np.asarray(intercept, dtype=np.float32)
        # Models saved before explanations existed lack the reference: the plain mean of
        # the pieces is a cruder starting point, but keeps their explanations exact.
        reference = state.arrays.get(f"{prefix}_reference")
        if reference is None or reference.shape != (genres,):
            reference = static.projected_.mean(axis=0)
        static.reference_ = np.asarray(reference, dtype=np.float32)
        return static
