"""Model kinds, the Predictor interface, and safe saving and loading."""

from tgplus.models.artifact import load_predictor, read_metadata, save_predictor
from tgplus.models.base import GenreModel
from tgplus.models.kinds import DEFAULT_KIND, KINDS, model_class
from tgplus.models.predictor import GenreScore, Prediction, Predictor, check_description

__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "GenreModel",
    "GenreScore",
    "Prediction",
    "Predictor",
    "check_description",
    "load_predictor",
    "model_class",
    "read_metadata",
    "save_predictor",
]
