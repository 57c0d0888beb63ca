"""BERT's uncased WordPiece tokenizer in plain Python, for the `fast` model's static embeddings.

The `tokenizers` package does this job, but it costs about 150 µs per short
text through its Python binding, as much as the rest of a prediction; this
version caches each word's pieces and takes an ASCII fast path, and a test
checks that it gives the same ids as `tokenizers` on the real data.
It follows BertNormalizer (clean text, pad CJK characters, strip accents,
lower-case), BertPreTokenizer (split on white space and punctuation) and
WordPiece (greedy longest match, "##" continuations, [UNK] for the rest).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_MAX_WORD_CHARS = 100
_CACHE_LIMIT = 200_000
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # dropped, not spaces
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# A word is a run of anything but white space and ASCII punctuation; each ASCII
# punctuation mark is a word of its own. Other punctuation is spaced out first.
_WORD = re.compile(r"[^\s!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip
_replacements: dict[str, str] = {}


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _replacement(char: str) -> str:
    """What BERT's normaliser makes of one non-ASCII character, punctuation spaced out."""
    code = ord(char)
    category = unicodedata.category(char)
    if code == 0xFFFD or category.startswith("C"):
        return ""
    if category == "Zs":
        return " "
    if any(low <= code <= high for low, high in _CJK_RANGES):
        return f" {char} "
    decomposed = unicodedata.normalize("NFD", char.lower())
    kept = (c for c in decomposed if unicodedata.category(c) != "Mn")
    return "".join(f" {c} " if _is_punctuation(c) else c for c in kept)


def _normalise(match: re.Match[str]) -> str:
    char = match.group()
    replacement = _replacements.get(char)
    if replacement is None:
        replacement = _replacements[char] = _replacement(char)
    return replacement


class WordPiece:
    """Text to word-piece ids, given a BERT vocabulary (the lines of vocab.txt)."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = list(vocabulary)
        self.ids = {piece: index for index, piece in enumerate(self.vocabulary)}
        self.unknown = self.ids["[UNK]"]
        self._cache: dict[str, tuple[int, ...]] = {}

    def words(self, text: str) -> list[str]:
        """Normalised words and punctuation marks, as BERT's pre-tokeniser splits them."""
        text = _ASCII_CONTROL.sub("", text)
        if not text.isascii():
            text = _NON_ASCII.sub(_normalise, text)  # only the few non-ASCII characters
        return _WORD.findall(text.lower())

    def words_with_spans(self, text: str) -> list[tuple[str, int, int]]:
        """`words(text)`, each with its start and end in `text`: for explanations.

        Normalising maps every character of `text` to zero or more characters;
        a word's span runs from the first to the last character it came from.
        """
        outputs: list[str] = []
        for char in text:
            if char.isascii():
                outputs.append("" if _ASCII_CONTROL.match(char) else char.lower())
            else:
                replacement = _replacements.get(char)
                if replacement is None:
                    replacement = _replacements[char] = _replacement(char)
                outputs.append(replacement.lower())
        origin = [i for i, output in enumerate(outputs) for _ in output]
        normalised = "".join(outputs)
        whole = normalised.lower()  # what `words` reads (differs only in context-dependent
        if len(whole) == len(normalised):  # forms such as a final sigma)
            normalised = whole
        return [
            (match.group(), origin[match.start()], origin[match.end() - 1] + 1)
            for match in _WORD.finditer(normalised)
        ]

    def pieces_of(self, word: str) -> tuple[int, ...]:
        """The piece ids of one normalised word (cached)."""
        pieces = self._cache.get(word)
        if pieces is None:
            pieces = self._pieces(word)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[word] = pieces
        return pieces

    def encode(self, text: str) -> list[int]:
        """The word-piece ids of `text`, without [CLS]/[SEP]."""
        ids: list[int] = []
        cache = self._cache
        for word in self.words(text):
            pieces = cache.get(word)
            if pieces is None:
                pieces = self._pieces(word)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[word] = pieces
            ids.extend(pieces)
        return ids

    def _pieces(self, word: str) -> tuple[int, ...]:
        if len(word) > _MAX_WORD_CHARS:
            return (self.unknown,)
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.ids:
                    pieces.append(self.ids[candidate])
                    break
                end -= 1
            else:
                return (self.unknown,)
            start = end
        return tuple(pieces)
