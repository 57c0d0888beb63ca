"""tgplus: tag movies with genres from their description.

>>> import tgplus
>>> model = tgplus.load()  # the model bundled with tgplus, or one you trained
>>> model.predict_one("The true story of notorious gangster Romeo Corleone's downfall.").genre
'Crime'
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgplus.models.predictor import Predictor

try:
    __version__ = version("tgplus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load"]


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
