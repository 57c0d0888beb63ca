"""Read movie files of every supported format into one clean, split table."""

from tgplus.data.genres import TMDB_GENRES, canonical_genre
from tgplus.data.sources import SourceFormat, detect_format
from tgplus.data.split import (
    DEFAULT_SPLIT,
    Side,
    Split,
    SplitSettings,
    side_of,
    split_by_key,
    split_key,
)
from tgplus.data.table import (
    LoadReport,
    Movie,
    MovieTable,
    SkipReason,
    genre_counts,
    load_movies,
    model_text,
    parse_languages,
    require_movies,
)

__all__ = [
    "DEFAULT_SPLIT",
    "TMDB_GENRES",
    "LoadReport",
    "Movie",
    "MovieTable",
    "Side",
    "SkipReason",
    "SourceFormat",
    "Split",
    "SplitSettings",
    "canonical_genre",
    "detect_format",
    "genre_counts",
    "load_movies",
    "model_text",
    "parse_languages",
    "require_movies",
    "side_of",
    "split_by_key",
    "split_key",
]
