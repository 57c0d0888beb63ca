"""Read movie files of every supported format into one clean, split table."""

from tgplus.data.genres import (
    DEFAULT_TAXONOMY,
    TMDB_GENRES,
    GenreMapping,
    Taxonomy,
    canonical_genre,
    load_mapping,
    load_taxonomy,
)
from tgplus.data.sources import SourceFormat, detect_format, expand_paths, supported_files
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
    LoadSettings,
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
    "DEFAULT_TAXONOMY",
    "TMDB_GENRES",
    "GenreMapping",
    "LoadReport",
    "LoadSettings",
    "Movie",
    "MovieTable",
    "Side",
    "SkipReason",
    "SourceFormat",
    "Split",
    "SplitSettings",
    "Taxonomy",
    "canonical_genre",
    "detect_format",
    "expand_paths",
    "genre_counts",
    "load_mapping",
    "load_movies",
    "load_taxonomy",
    "model_text",
    "parse_languages",
    "require_movies",
    "side_of",
    "split_by_key",
    "split_key",
    "supported_files",
]
