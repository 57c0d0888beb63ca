"""The model kinds `tgplus train --model KIND` accepts, by name."""

from __future__ import annotations

from tgplus.errors import ModelError
from tgplus.models.accurate import AccurateModel
from tgplus.models.base import GenreModel
from tgplus.models.knn import SeedKnnModel
from tgplus.models.lexical import FastModel
from tgplus.models.majority import MajorityModel

KINDS: dict[str, type[GenreModel]] = {
    cls.kind: cls for cls in (FastModel, AccurateModel, SeedKnnModel, MajorityModel)
}
DEFAULT_KIND = FastModel.kind


def model_class(kind: str) -> type[GenreModel]:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(KINDS)
        raise ModelError(f"unknown model kind {kind!r}; choose one of: {known}") from None
