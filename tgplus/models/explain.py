"""Why a genre scored what it did: a signed weight for every word, with its place in the text.

The `fast` model's three scorers are each linear in per-token terms before their sigmoid,
so their log-odds split exactly into one term per word:

- TF-IDF logistic regression and Complement NB: `intercept + sum_t x_t * coef_t`; a term's
  part goes to its word (a bigram's is shared by its two words, a term seen twice is
  shared by both places);
- static word pieces: the mean of the pieces' projected rows, written as
  `intercept + reference + sum_p (projected_p - reference) / n`, where `reference` is the
  mean text of the training set; a word gets the sum over its pieces.

The blend averages the scorers' probabilities, not their log-odds, so each scorer's terms
are carried across its sigmoid by one factor, `(p - p0) / (z - z0)` (DeepLIFT's rescale
rule: `z0` the log-odds without the words, `p0` its probability) and weighted as in the
blend. A genre's word weights then add up exactly to its raw score (before calibration)
minus `baseline`, the score of a text with no words. Word pieces the encoder does not
know ([UNK], such as emoji) are not words: their small share stays in `baseline`.

A word is a run of word characters (`\\w+`, with any combining marks that follow it), or
a run the word-piece splitter reads that has none (a punctuation mark).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tgplus.models.linear import LinearHead, sigmoid
from tgplus.models.static import StaticEmbeddings
from tgplus.models.text import Span, TfidfBlock, term_spans

ExplanationMethod = Literal["exact", "exact-parts-only", "none"]
"""exact: every part of the model is explained; exact-parts-only: only the parts that
decompose exactly (the `accurate` model's fine-tuned MiniLM head does not);
none: the model kind cannot say which words counted."""

_RUN = re.compile(r"\w+")
_TINY = 1e-4  # below this log-odds change the rescale factor is the sigmoid's slope

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TokenWeights:
    """Per-word weights of every genre, for one model text."""

    spans: list[Span]
    """Where each word is in the model text (start, end), in the order of `weights`' rows."""
    weights: Floats
    """Shape (words, genres): each word's signed share of each genre's raw score."""
    baseline: Floats
    """Shape (genres,): the raw score minus the sum of the explained words' weights."""
    method: ExplanationMethod


class Words:
    """The words of a text, found once; scorers map the spans of their tokens onto them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: list[Span] = [self._with_marks(*m.span()) for m in _RUN.finditer(text)]
        self._ends = [end for _, end in self.spans]
        self._count = len(self.spans)

    def _with_marks(self, start: int, end: int) -> Span:
        """The span grown over combining marks that follow it, so it ends between characters
        a reader sees (a word followed by U+0301 keeps its accent)."""
        while end < len(self.text) and unicodedata.category(self.text[end]).startswith("M"):
            end += 1
        return start, end

    def covering(self, start: int, end: int) -> list[int]:
        """The words that overlap `[start, end)`; a span over none becomes a word of its own."""
        found = []
        i = bisect.bisect_right(self._ends, start, hi=self._count)
        while i < self._count and self.spans[i][0] < end:
            found.append(i)
            i += 1
        if not found:
            found = [len(self.spans)]
            self.spans.append(self._with_marks(start, end))
        return found


def lexical_terms(
    words: Words, blocks: Sequence[TfidfBlock], offsets: Sequence[int], text: str
) -> tuple[npt.NDArray[np.int32], Floats, Floats]:
    """The text's features (indices, tf-idf values) and how they split among `words`:
    a matrix (words so far, features) of shares."""
    indices: list[npt.NDArray[np.int32]] = []
    values: list[Floats] = []
    entries: list[tuple[int, int, float]] = []  # (word, feature position, share)
    for block, offset in zip(blocks, offsets, strict=False):
        block_indices, block_values = block.transform_one(text)
        first = sum(len(part) for part in indices)
        position = {int(index): first + j for j, index in enumerate(block_indices)}
        occurrences = [
            (block.vocabulary_.get(term), spans)
            for term, spans in term_spans(text, block.settings, block.stop_words_)
        ]
        counts = Counter(index for index, _ in occurrences if index is not None)
        for index, spans in occurrences:
            if index is None:
                continue
            share = 1.0 / counts[index] / len(spans)
            for start, end in spans:
                covered = words.covering(start, end)
                entries += [(w, position[index], share / len(covered)) for w in covered]
        indices.append((block_indices + offset).astype(np.int32))
        values.append(block_values)
    features = np.concatenate(indices) if indices else np.empty(0, np.int32)
    shares = np.zeros((len(words.spans), len(features)), np.float32)
    for word, column, share in entries:
        shares[word, column] += share
    return features, np.concatenate(values) if values else np.empty(0, np.float32), shares


def piece_terms(words: Words, static: StaticEmbeddings, text: str) -> Floats:
    """Shape (words so far, genres): each word's part of the static scorer's log-odds
    above `intercept + reference` (unknown pieces left out)."""
    tokenizer, projected, reference = static.tokenizer_, static.projected_, static.reference_
    found = [
        (start, end, tokenizer.pieces_of(word))
        for word, start, end in tokenizer.words_with_spans(text)
    ]
    total = np.float32(max(sum(len(pieces) for _, _, pieces in found), 1))
    rows: list[tuple[list[int], Floats]] = []
    for start, end, pieces in found:
        known = [p for p in pieces if p != tokenizer.unknown]
        if not known:
            continue
        part = (projected[known].sum(axis=0) - len(known) * reference) / total
        covered = words.covering(start, end)
        rows.append((covered, part / np.float32(len(covered))))
    terms = np.zeros((len(words.spans), projected.shape[1]), np.float32)
    for covered, part in rows:
        terms[covered] += part
    return terms


def rescaled(terms: Floats, logits: Floats, empty_logits: Floats) -> Floats:
    """Log-odds terms (words, genres) carried across the sigmoid by DeepLIFT's rescale rule,
    so that they add up to `sigmoid(logits) - sigmoid(empty_logits)` when they add up to
    `logits - empty_logits`."""
    change = logits - empty_logits
    slope = sigmoid(logits) * (1 - sigmoid(logits))
    small = np.abs(change) < _TINY
    safe = np.where(small, 1.0, change)
    factor = np.where(small, slope, (sigmoid(logits) - sigmoid(empty_logits)) / safe)
    result: Floats = terms * factor.astype(np.float32)
    return result


def light_token_weights(
    text: str,
    *,
    blocks: Sequence[TfidfBlock],
    offsets: Sequence[int],
    heads: dict[str, LinearHead],
    static: StaticEmbeddings | None,
    mixing: dict[str, float],
    raw: Floats,
    method: ExplanationMethod,
) -> TokenWeights:
    """The word weights of the light scorers (TF-IDF heads, static pieces) in a blend.

    `heads` maps scorer names to TF-IDF heads; `mixing` the normalised blend weight of
    each scorer named (and of "static");
    `raw` the model's raw scores for `text`, which fix `baseline`.
    """
    words = Words(text)
    features, values, shares = lexical_terms(words, blocks, offsets, text)
    static_terms = piece_terms(words, static, text) if static is not None else None
    genres = len(raw)
    weights = np.zeros((len(words.spans), genres), np.float32)
    for name, head in heads.items():
        contributions = values[:, None] * head.coef_[features]  # (features, genres)
        terms = np.zeros((len(words.spans), genres), np.float32)
        terms[: shares.shape[0]] = shares @ contributions
        logits = head.intercept_ + contributions.sum(axis=0)
        weights += mixing[name] * rescaled(terms, logits, head.intercept_)
    if static is not None and static_terms is not None:
        terms = np.zeros((len(words.spans), genres), np.float32)
        terms[: static_terms.shape[0]] = static_terms
        empty = static.intercept_ + static.reference_
        weights += mixing["static"] * rescaled(terms, static.decision_one(text), empty)
    return TokenWeights(
        spans=list(words.spans),
        weights=weights,
        baseline=(raw - weights.sum(axis=0)).astype(np.float32),
        method=method,
    )
