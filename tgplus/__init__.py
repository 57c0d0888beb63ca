"""tgplus: tag movies with genres from their description.

>>> import tgplus
>>> model = tgplus.load()  # the model bundled with tgplus, or one you trained
>>> model.predict_one("A mafia boss's son becomes a ruthless gangster.").genre
'Crime'
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tgplus.models.predictor import Predictor
    from tgplus.scoring import score_frame

try:
    __version__ = version("tgplus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load", "score_frame"]


def load(path: str | os.PathLike[str] | None = None) -> Predictor:
    """The model at `path` (a model directory), ready to predict.

    Without `path`: `data/model` if it exists, else the model bundled with
    tgplus. A missing or damaged model raises `tgplus.errors.ModelError`
    naming the file.
    """
    from tgplus.models import load_predictor
    from tgplus.models.bundled import locate_model

    location = locate_model(path)
    if location.bundled:
        logging.getLogger(__name__).info(location.describe())
    return load_predictor(location.path)


def __getattr__(name: str) -> Any:
    # `tgplus.score_frame` without loading numpy and the models for every `import tgplus`.
    if name == "score_frame":
        from tgplus.scoring import score_frame

        return score_frame
    raise AttributeError(f"module 'tgplus' has no attribute {name!r}")
