"""TF-IDF text features with a transform cheap enough for one description at a time.

Fitting uses scikit-learn's `TfidfVectorizer` (vocabulary, document
frequencies) with our own analyzer; transforming uses the small numpy code
below instead of the vectorizer. The reason is speed: the vectorizer spends
about 2 ms of call overhead on a single short text, while the arithmetic is
microseconds, and a served model answers one description at a time. A test
checks that both transforms agree.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse

_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern

Analyzer = Literal["word", "char_wb"]
FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class TfidfSettings:
    """How a block turns text into terms and weights them."""

    analyzer: Analyzer = "word"
    ngram_min: int = 1
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 1.0
    sublinear_tf: bool = True
    max_features: int | None = None
    stop_words: str | tuple[str, ...] = ()
    """Words dropped before n-grams are formed; "english" is scikit-learn's list."""

    def resolved_stop_words(self) -> frozenset[str]:
        if self.stop_words == "english":
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

            return frozenset(ENGLISH_STOP_WORDS)
        return frozenset(self.stop_words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer,
            "ngram_min": self.ngram_min,
            "ngram_max": self.ngram_max,
            "min_df": self.min_df,
            "max_df": self.max_df,
            "sublinear_tf": self.sublinear_tf,
            "max_features": self.max_features,
            "stop_words": sorted(self.resolved_stop_words()),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TfidfSettings:
        return cls(**{**values, "stop_words": tuple(values.get("stop_words", ()))})


def terms(
    text: str, settings: TfidfSettings, stop_words: frozenset[str] = frozenset()
) -> list[str]:
    """The terms of `text`: word n-grams (stop words removed first, as scikit-learn
    does), or character n-grams within words."""
    words = _WORD.findall(text.lower())
    if stop_words:
        words = [word for word in words if word not in stop_words]
    low, high = settings.ngram_min, settings.ngram_max
    found: list[str] = []
    if settings.analyzer == "word":
        for n in range(low, high + 1):
            if n == 1:
                found += words
            elif n == 2:
                # the common case, written out because it is the hot path of serving
                found += [a + " " + b for a, b in itertools.pairwise(words)]
            else:
                found += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return found
    for word in words:
        padded = f" {word} "
        for n in range(low, high + 1):
            found += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return found


Span = tuple[int, int]


def lowered_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """`text.lower()` and, where lower-casing changed its length (as "İ" does), the index in
    `text` of every character of the result; None means the indices are the same."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered, None
    origin = [i for i, char in enumerate(text) for _ in range(len(char.lower()))]
    return lowered, origin


def term_spans(
    text: str, settings: TfidfSettings, stop_words: frozenset[str] = frozenset()
) -> list[tuple[str, tuple[Span, ...]]]:
    """`terms(text, ...)` in the same order, each with the spans (into `text`) of the words
    it was made of: one word for a unigram or a character n-gram, n words for a word n-gram.

    The explanation path's twin of `terms`, which stays lean because serving runs it."""
    lowered, origin = lowered_with_offsets(text)
    words: list[tuple[str, Span]] = []
    for match in _WORD.finditer(lowered):
        if match.group() in stop_words:
            continue
        start, end = match.span()
        if origin is not None:
            start, end = origin[start], origin[end - 1] + 1
        words.append((match.group(), (start, end)))
    low, high = settings.ngram_min, settings.ngram_max
    found: list[tuple[str, tuple[Span, ...]]] = []
    if settings.analyzer == "word":
        for n in range(low, high + 1):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                found.append((" ".join(w for w, _ in gram), tuple(span for _, span in gram)))
        return found
    for word, span in words:
        padded = f" {word} "
        for n in range(low, high + 1):
            found += [(padded[i : i + n], (span,)) for i in range(len(padded) - n + 1)]
    return found


class TfidfBlock:
    """One vocabulary with its idf weights: fitted by scikit-learn, applied by numpy."""

    def __init__(self, *, settings: TfidfSettings | None = None) -> None:
        self.settings = settings or TfidfSettings()

    def fit(self, texts: Sequence[str]) -> TfidfBlock:
        from sklearn.feature_extraction.text import TfidfVectorizer

        s = self.settings
        stop_words = self.stop_words_ = s.resolved_stop_words()
        vectorizer = TfidfVectorizer(
            analyzer=lambda text: terms(text, s, stop_words),
            min_df=s.min_df,
            max_df=s.max_df,
            sublinear_tf=s.sublinear_tf,
            max_features=s.max_features,
            dtype=np.float32,
        )
        vectorizer.fit(texts)
        ordered = sorted(vectorizer.vocabulary_.items(), key=lambda item: item[1])
        self.terms_ = [term for term, _ in ordered]
        self.vocabulary_ = {term: index for index, term in enumerate(self.terms_)}
        self.idf_ = np.asarray(vectorizer.idf_, dtype=np.float32)
        return self

    @classmethod
    def from_state(
        cls, settings: TfidfSettings, vocabulary: list[str], idf: FloatArray
    ) -> TfidfBlock:
        block = cls(settings=settings)
        block.stop_words_ = settings.resolved_stop_words()
        block.terms_ = vocabulary
        block.vocabulary_ = {term: index for index, term in enumerate(vocabulary)}
        block.idf_ = np.asarray(idf, dtype=np.float32)
        return block

    @property
    def size(self) -> int:
        return len(self.terms_)

    def transform_one(self, text: str) -> tuple[IndexArray, FloatArray]:
        """Column indices and l2-normalised tf-idf weights of one text (indices unsorted)."""
        counts = Counter(
            i
            for i in map(self.vocabulary_.get, terms(text, self.settings, self.stop_words_))
            if i is not None
        )
        if not counts:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        indices = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
        weights = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        if self.settings.sublinear_tf:
            np.log(weights, out=weights)
            weights += np.float32(1.0)
        weights *= self.idf_[indices]
        weights /= np.float32(np.sqrt(weights @ weights))
        return indices, weights

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The tf-idf matrix of many texts (rows l2-normalised), as CSR."""
        indptr = [0]
        all_indices: list[IndexArray] = []
        all_weights: list[FloatArray] = []
        for text in texts:
            indices, weights = self.transform_one(text)
            all_indices.append(indices)
            all_weights.append(weights)
            indptr.append(indptr[-1] + len(indices))
        matrix = sparse.csr_matrix(
            (
                np.concatenate(all_weights) if all_weights else np.empty(0, np.float32),
                np.concatenate(all_indices) if all_indices else np.empty(0, np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(texts), self.size),
        )
        matrix.sort_indices()  # solvers (and parallel workers' read-only copies) expect it
        return matrix


def pack_terms(terms: Sequence[str]) -> npt.NDArray[np.uint8]:
    """A vocabulary as one newline-joined UTF-8 buffer: compact, and loadable without pickle.

    Terms never contain a newline (they are made of word characters and spaces).
    """
    return np.frombuffer("\n".join(terms).encode("utf-8"), dtype=np.uint8)


def unpack_terms(packed: npt.NDArray[Any]) -> list[str]:
    from tgplus.errors import ModelError

    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise ModelError("the model's vocabulary is not a byte array; retrain the model")
    return bytes(packed).decode("utf-8").split("\n") if packed.size else []
