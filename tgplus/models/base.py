"""What every model kind is: descriptions in, one probability per genre out.

A kind follows scikit-learn's estimator conventions: `__init__` takes
keyword-only parameters and only stores them, `fit` returns `self`, fitted
state ends in `_`. To be saved it turns its fitted state into plain numpy
arrays and a JSON-ready dict (`get_state`), and is rebuilt from them
(`from_state`), so that loading a model never runs code from a file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from tgplus.errors import ModelError

if TYPE_CHECKING:
    from tgplus.models.explain import TokenWeights

Scores = npt.NDArray[np.float32]
"""Shape (n_texts, n_genres): a probability for every genre of the model."""
Labels = npt.NDArray[np.bool_]
"""Shape (n_texts, n_genres): True where a movie has that genre."""


@dataclass
class ModelState:
    """A fitted model as data: arrays saved to .npz, settings saved to JSON."""

    arrays: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def array(self, name: str) -> npt.NDArray[Any]:
        try:
            return self.arrays[name]
        except KeyError:
            raise ModelError(f"the model file has no array {name!r}; retrain the model") from None


class GenreModel(ABC):
    """A genre classifier of one kind."""

    kind: ClassVar[str]
    needs_embeddings: ClassVar[bool] = False
    refits_cheaply: ClassVar[bool] = True
    """Whether training may fit this kind again on parts of the data to tune thresholds
    out of source (False where one fit takes many minutes)."""
    genres_: tuple[str, ...]

    @abstractmethod
    def fit(
        self,
        texts: Sequence[str],
        labels: Labels,
        genres: Sequence[str],
        known: Labels | None = None,
    ) -> GenreModel:
        """Learn from `texts` whose genres are the columns of `labels`.

        `known` (same shape, optional) is False where a text's source cannot
        express that genre: such a cell is unknown, not a negative example.
        """

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> Scores:
        """A probability for every genre of every text."""

    def predict_proba_one(self, text: str) -> npt.NDArray[np.float32]:
        """The probabilities of one text; kinds override this where one text is cheaper."""
        scores: npt.NDArray[np.float32] = self.predict_proba([text])[0]
        return scores

    def explain_one(
        self, text: str, raw: npt.NDArray[np.float32] | None = None
    ) -> TokenWeights | None:
        """Each word's weight for every genre of one text, or None where the kind cannot say.

        `raw` is `predict_proba_one(text)` when the caller already has it.
        """
        return None

    @abstractmethod
    def get_state(self) -> ModelState:
        """The fitted state as arrays and JSON-ready settings."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: ModelState, genres: Sequence[str]) -> GenreModel:
        """Rebuild a fitted model from `get_state`'s output."""

    def describe(self) -> dict[str, Any]:
        """Hyperparameters worth recording in the metadata."""
        return {}
