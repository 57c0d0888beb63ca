"""A train/validation/test split that never moves a movie between sides.

Each movie's side is a pure function of a stable key (its TMDB id, else its
IMDb id, else its normalised title and overview), hashed into [0, 1). The key
is taken after deduplication, from the merged movie: a film that one file
gives with a TMDB id and another with an IMDb id is one movie with both ids,
so it has one key and one side whatever file it came from. Adding,
removing or reordering rows, or loading the files in another order, leaves
every other movie where it was. Validation is carved from the band just above
the test band, so changing the validation share never touches the test side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum

from tgplus.data.table import Movie, normalise_text
from tgplus.errors import DataError


class Side(str, Enum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


@dataclass(frozen=True)
class SplitSettings:
    """Shares of all movies for the test side and for validation (tuning thresholds)."""

    test_share: float = 0.1
    validation_share: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_share < 1.0:
            raise DataError(f"test share {self.test_share} is out of range; use 0 <= share < 1")
        if self.validation_share < 0.0 or self.test_share + self.validation_share >= 1.0:
            raise DataError(
                f"validation share {self.validation_share} is out of range; test and "
                "validation shares together must leave some movies to train on"
            )

    def to_dict(self) -> dict[str, float | str]:
        key = "sha256 of tmdb:<id>, else imdb:<id>, else text:<title>\\n<overview>"
        return {**asdict(self), "key": key}


@dataclass(frozen=True)
class Split:
    train: tuple[Movie, ...]
    validation: tuple[Movie, ...]
    test: tuple[Movie, ...]
    settings: SplitSettings


DEFAULT_SPLIT = SplitSettings()


def split_key(movie: Movie) -> str:
    if movie.id is not None:
        return f"tmdb:{movie.id}"
    if movie.imdb_id is not None:
        return f"imdb:{movie.imdb_id}"
    return f"text:{normalise_text(movie.title)}\n{normalise_text(movie.overview)}"


def key_position(key: str) -> float:
    """Where `key` falls in [0, 1): the first 8 bytes of its sha256."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def side_of(movie: Movie, settings: SplitSettings) -> Side:
    position = key_position(split_key(movie))
    if position < settings.test_share:
        return Side.TEST
    if position < settings.test_share + settings.validation_share:
        return Side.VALIDATION
    return Side.TRAIN


def split_by_key(movies: Iterable[Movie], settings: SplitSettings | None = None) -> Split:
    """Partition `movies` into train, validation and test, keeping their order."""
    settings = settings or DEFAULT_SPLIT
    sides: dict[Side, list[Movie]] = {side: [] for side in Side}
    for movie in movies:
        sides[side_of(movie, settings)].append(movie)
    return Split(
        tuple(sides[Side.TRAIN]), tuple(sides[Side.VALIDATION]), tuple(sides[Side.TEST]), settings
    )
