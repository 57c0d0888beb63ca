"""The Predictor: the one interface training, evaluation, the CLI and the API use.

It wraps a fitted model kind with its per-genre thresholds and answers with
`Prediction`s: the top genre, every genre at or above its threshold, the
top-k genres with their scores, and all scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.data.table import model_text
from tgplus.errors import InputError, ModelError
from tgplus.models.base import GenreModel, Scores


@dataclass(frozen=True, slots=True)
class GenreScore:
    genre: str
    score: float


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model says of one description."""

    genre: str
    """The top-scored genre."""
    genres: tuple[str, ...]
    """Every genre scoring at or above its threshold, best first (at least the top genre)."""
    top: tuple[GenreScore, ...]
    """The k best genres with their scores."""
    scores: dict[str, float]
    """The score (a probability) of every genre the model knows."""

    def as_dict(self, *, digits: int = 6, with_scores: bool = False) -> dict[str, Any]:
        """The JSON shape the API, the CLI and batch scoring share."""
        body: dict[str, Any] = {
            "genre": self.genre,
            "genres": list(self.genres),
            "top": [{"genre": s.genre, "score": round(s.score, digits)} for s in self.top],
        }
        if with_scores:
            body["scores"] = {genre: round(v, digits) for genre, v in self.scores.items()}
        return body


def check_title(title: str, max_chars: int | None = None) -> str:
    """The title, or an InputError when it is longer than `max_chars`."""
    if max_chars is not None and len(title) > max_chars:
        raise InputError(
            f"title is {len(title)} characters, more than the limit of {max_chars}; shorten it"
        )
    return title


def check_description(description: str, max_chars: int | None = None) -> str:
    """The description stripped, or an InputError saying what is wrong with it."""
    if not isinstance(description, str):
        raise InputError("description must be text")
    stripped = description.strip()
    if not stripped:
        raise InputError("description is empty; send the movie's plot as text")
    if max_chars is not None and len(stripped) > max_chars:
        raise InputError(
            f"description is {len(stripped)} characters, more than the limit of {max_chars}; "
            "shorten it"
        )
    return stripped


class Predictor:
    """A fitted model with its thresholds and metadata."""

    def __init__(
        self,
        model: GenreModel,
        thresholds: Sequence[float] | npt.NDArray[np.float32],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.genres: tuple[str, ...] = tuple(model.genres_)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        if self.thresholds.shape != (len(self.genres),):
            raise ModelError(
                f"{len(self.thresholds)} thresholds for {len(self.genres)} genres; "
                "retrain the model"
            )
        self.metadata: dict[str, Any] = metadata or {}

    @property
    def kind(self) -> str:
        return self.model.kind

    def scores(
        self, descriptions: str | Sequence[str], titles: str | Sequence[str] | None = None
    ) -> Scores:
        """Probabilities, shape (n, genres), for descriptions already checked."""
        descriptions = _listed(descriptions)
        titles = _listed(titles) if titles is not None else [""] * len(descriptions)
        if len(titles) != len(descriptions):
            raise InputError(f"{len(titles)} titles for {len(descriptions)} descriptions")
        texts = [model_text(d, t) for d, t in zip(descriptions, titles, strict=True)]
        if not texts:
            return np.zeros((0, len(self.genres)), np.float32)
        return self.model.predict_proba(texts)

    def predict(
        self,
        descriptions: str | Sequence[str],
        titles: str | Sequence[str] | None = None,
        *,
        top_k: int = 3,
        max_chars: int | None = None,
    ) -> list[Prediction]:
        """Predictions for many descriptions, in order (one plain string counts as a list of one).

        An empty description, or one (or a title) longer than `max_chars`,
        raises InputError.
        """
        checked = [check_description(d, max_chars) for d in _listed(descriptions)]
        if titles is not None:
            titles = [check_title(t, max_chars) for t in _listed(titles)]
        return [self._prediction(row, top_k) for row in self.scores(checked, titles)]

    def predict_one(
        self, description: str, title: str = "", *, top_k: int = 3, max_chars: int | None = None
    ) -> Prediction:
        """The prediction for one description, on the model's fast single-text path."""
        text = model_text(check_description(description, max_chars), check_title(title, max_chars))
        return self._prediction(self.model.predict_proba_one(text), top_k)

    def _prediction(self, row: npt.NDArray[np.float32], top_k: int) -> Prediction:
        # Plain lists from here on: per-element numpy indexing would cost more
        # than the model itself on the single-description path.
        order: list[int] = np.argsort(-row, kind="stable").tolist()
        passed: list[bool] = (row >= self.thresholds).tolist()
        values: list[float] = row.tolist()
        genres = self.genres
        above = tuple(genres[i] for i in order if passed[i])
        return Prediction(
            genre=genres[order[0]],
            genres=above or (genres[order[0]],),
            top=tuple(GenreScore(genres[i], values[i]) for i in order[: max(top_k, 1)]),
            scores=dict(zip(genres, values, strict=True)),
        )


def _listed(texts: str | Sequence[str]) -> Sequence[str]:
    """A plain string as a list of one, so `predict("a plot")` is not read letter by letter."""
    return [texts] if isinstance(texts, str) else texts
