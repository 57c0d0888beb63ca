"""The Predictor: the one interface training, evaluation, the CLI and the API use.

It wraps a fitted model kind with its per-genre thresholds and its calibration
(`tgplus.models.calibration`) and answers with `Prediction`s: the top genre,
every genre at or above its threshold, the top-k genres with their (calibrated)
scores, all scores, a confidence and whether to trust it; on request, each top
genre's explanation and a genre set with a recall target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.data.table import model_text
from tgplus.errors import InputError, ModelError
from tgplus.models.base import GenreModel, Scores
from tgplus.models.calibration import Calibration, top_scores
from tgplus.models.explain import ExplanationMethod, TokenWeights

EXPLAINED_WORDS = 10
"""Words listed per genre in an explanation, largest weights (either sign) first."""


@dataclass(frozen=True, slots=True)
class WordWeight:
    """A word of the title or description and how much it moved a genre's score."""

    text: str
    start: int
    """Character offset in the field as sent (Python string index: code points)."""
    end: int
    weight: float
    """Signed share of the genre's raw score (before calibration) this word accounts for."""
    field: str
    """"description" or "title"."""

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "weight": round(self.weight, digits),
            "field": self.field,
        }


@dataclass(frozen=True, slots=True)
class GenreScore:
    genre: str
    score: float
    explanation: tuple[WordWeight, ...] | None = None


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
    confidence: float = 0.0
    """The calibrated score of the top genre: how likely it is one of the movie's genres."""
    confident: bool | None = None
    """Confidence at or above the threshold chosen on validation for the model's target
    precision; None for models saved without calibration."""
    genre_set: tuple[str, ...] | None = None
    """With a recall target: the genres whose set is expected to hold that share of the
    movie's genres (best first)."""
    recall_target: float | None = None
    explanation_method: ExplanationMethod | None = None
    """With explanations: how exact they are (see `tgplus.models.explain`)."""

    def as_dict(self, *, digits: int = 6, with_scores: bool = False) -> dict[str, Any]:
        """The JSON shape the API, the CLI and batch scoring share."""
        top = []
        for entry in self.top:
            item: dict[str, Any] = {"genre": entry.genre, "score": round(entry.score, digits)}
            if entry.explanation is not None:
                item["explanation"] = [word.as_dict() for word in entry.explanation]
            top.append(item)
        body: dict[str, Any] = {
            "genre": self.genre,
            "genres": list(self.genres),
            "top": top,
            "confidence": round(self.confidence, digits),
            "confident": self.confident,
        }
        if self.recall_target is not None and self.genre_set is not None:
            body["recall_target"] = self.recall_target
            body["genre_set"] = list(self.genre_set)
        if self.explanation_method is not None:
            body["explanation_method"] = self.explanation_method
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
        calibration: Calibration | None = None,
    ) -> None:
        self.model = model
        self.calibration = calibration
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

    def calibrated(self, raw: Scores) -> Scores:
        """Calibrated scores from the model's raw ones (unchanged without calibration)."""
        return raw if self.calibration is None else self.calibration.maps.apply(raw)

    def confidences(self, scores: Scores) -> npt.NDArray[np.float32]:
        """The confidence of each row of calibrated `scores` (shape (n,)), as predictions
        report it: the learned probability that the top genre is right, or the top
        genre's score (see `tgplus.models.calibration`)."""
        return (top_scores if self.calibration is None else self.calibration.confidences)(scores)

    def score_texts(self, texts: Sequence[str]) -> Scores:
        """Calibrated probabilities, shape (n, genres), of model texts (`model_text`)."""
        if not texts:
            return np.zeros((0, len(self.genres)), np.float32)
        return self.calibrated(self.model.predict_proba(texts))

    def scores(
        self, descriptions: str | Sequence[str], titles: str | Sequence[str] | None = None
    ) -> Scores:
        """Probabilities, shape (n, genres), for descriptions already checked."""
        return self.calibrated(self._raw_scores(descriptions, titles))

    def _raw_scores(
        self, descriptions: str | Sequence[str], titles: str | Sequence[str] | None
    ) -> Scores:
        """The model's uncalibrated probabilities, shape (n, genres)."""
        descriptions = _listed(descriptions)
        titles = _listed(titles) if titles is not None else [""] * len(descriptions)
        if len(titles) != len(descriptions):
            raise InputError(f"{len(titles)} titles for {len(descriptions)} descriptions")
        if not descriptions:
            return np.zeros((0, len(self.genres)), np.float32)
        return self.model.predict_proba(
            [model_text(d, t) for d, t in zip(descriptions, titles, strict=True)]
        )

    def recall_threshold(self, target: float | None) -> float | None:
        """The score threshold for a recall target (None: no target), or an InputError."""
        if target is None:
            return None
        if self.calibration is None:
            raise InputError(
                "this model was saved without recall calibration, so recall_target cannot be "
                "honoured; retrain it with this version of tgplus"
            )
        return self.calibration.recall_threshold(target)

    def predict(
        self,
        descriptions: str | Sequence[str],
        titles: str | Sequence[str] | None = None,
        *,
        top_k: int = 3,
        max_chars: int | None = None,
        explain: bool = False,
        recall_target: float | None = None,
    ) -> list[Prediction]:
        """Predictions for many descriptions, in order (one plain string counts as a list of one).

        An empty description, or one (or a title) longer than `max_chars`, or a
        recall target outside (0, 1), raises InputError.
        """
        threshold = self.recall_threshold(recall_target)
        descriptions = _listed(descriptions)
        checked = [check_description(d, max_chars) for d in descriptions]
        if titles is not None:
            titles = [check_title(t, max_chars) for t in _listed(titles)]
        raw = self._raw_scores(checked, titles)
        predictions = [
            self._prediction(row, top_k, recall_target, threshold) for row in self.calibrated(raw)
        ]
        if explain:
            # Each explanation is handed its text's raw row, so no text is scored twice.
            sent_titles = titles if titles is not None else [""] * len(descriptions)
            predictions = [
                self._explained(p, d, t, r)
                for p, d, t, r in zip(predictions, descriptions, sent_titles, raw, strict=True)
            ]
        return predictions

    def predict_one(
        self,
        description: str,
        title: str = "",
        *,
        top_k: int = 3,
        max_chars: int | None = None,
        explain: bool = False,
        recall_target: float | None = None,
    ) -> Prediction:
        """The prediction for one description, on the model's fast single-text path."""
        threshold = self.recall_threshold(recall_target)
        text = model_text(check_description(description, max_chars), check_title(title, max_chars))
        raw = self.model.predict_proba_one(text)
        prediction = self._prediction(self.calibrated(raw), top_k, recall_target, threshold)
        return self._explained(prediction, description, title, raw) if explain else prediction

    def _prediction(
        self,
        row: npt.NDArray[np.float32],
        top_k: int,
        recall_target: float | None = None,
        recall_threshold: float | None = None,
    ) -> Prediction:
        # Plain lists from here on: per-element numpy indexing would cost more
        # than the model itself on the single-description path.
        order: list[int] = np.argsort(-row, kind="stable").tolist()
        passed: list[bool] = (row >= self.thresholds).tolist()
        values: list[float] = row.tolist()
        genres = self.genres
        above = tuple(genres[i] for i in order if passed[i])
        confidence = float(self.confidences(row)[0])
        genre_set = None
        if recall_threshold is not None:
            genre_set = tuple(
                genres[i] for n, i in enumerate(order) if n == 0 or values[i] >= recall_threshold
            )
        return Prediction(
            genre=genres[order[0]],
            genres=above or (genres[order[0]],),
            top=tuple(GenreScore(genres[i], values[i]) for i in order[: max(top_k, 1)]),
            scores=dict(zip(genres, values, strict=True)),
            confidence=confidence,
            confident=(
                None if self.calibration is None else confidence >= self.calibration.threshold
            ),
            genre_set=genre_set,
            recall_target=recall_target if genre_set is not None else None,
        )

    def _explained(
        self,
        prediction: Prediction,
        description: str,
        title: str,
        raw: npt.NDArray[np.float32] | None = None,
    ) -> Prediction:
        """`prediction` with each top genre's words (offsets into the fields as sent).

        `raw` is the model's uncalibrated row for this text, when already computed.
        """
        stripped_title, stripped_description = title.strip(), description.strip()
        weights = self.model.explain_one(model_text(stripped_description, stripped_title), raw)
        if weights is None:
            unexplained = tuple(replace(s, explanation=()) for s in prediction.top)
            return replace(prediction, top=unexplained, explanation_method="none")
        placed = _placed_words(weights, description, title)
        words = [(i, word) for i, word in enumerate(placed) if word is not None]
        top = []
        for entry in prediction.top:
            column: list[float] = weights.weights[:, self.genres.index(entry.genre)].tolist()
            ranked = sorted(
                (replace(word, weight=column[i]) for i, word in words if column[i] != 0.0),
                key=lambda word: -abs(word.weight),
            )
            top.append(replace(entry, explanation=tuple(ranked[:EXPLAINED_WORDS])))
        return replace(prediction, top=tuple(top), explanation_method=weights.method)


def _placed_words(weights: TokenWeights, description: str, title: str) -> list[WordWeight | None]:
    """Each explained word placed in the title or description as sent; None for words of
    the text the model adds between them (the ". " after a title)."""
    stripped_title = title.strip()
    title_shift = len(title) - len(title.lstrip())
    description_start = len(stripped_title) + 2 if stripped_title else 0
    description_shift = len(description) - len(description.lstrip())
    placed: list[WordWeight | None] = []
    for start, end in weights.spans:
        if stripped_title and end <= len(stripped_title):
            field, shift, sent = "title", title_shift, title
        elif start >= description_start:
            field, shift, sent = "description", description_shift - description_start, description
        else:
            placed.append(None)
            continue
        placed.append(
            WordWeight(sent[start + shift : end + shift], start + shift, end + shift, 0.0, field)
        )
    return placed


def _listed(texts: str | Sequence[str]) -> Sequence[str]:
    """A plain string as a list of one, so `predict("a plot")` is not read letter by letter."""
    return [texts] if isinstance(texts, str) else texts
