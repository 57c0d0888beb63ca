"""The TMDB movie genres: the only names tgplus accepts as genres.

Broken rows of Kaggle's movies_metadata.csv put production companies
("Carousel Productions", "Aniplex") where genres belong; validating every name
against this list is what keeps them out of a model.
"""

from __future__ import annotations

TMDB_GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Foreign",
    "History",
    "Horror",
    "Music",
    "Mystery",
    "Romance",
    "Science Fiction",
    "TV Movie",
    "Thriller",
    "War",
    "Western",
)

# Spellings seen in other movie tables, mapped to the TMDB name.
_ALIASES = {
    "sci-fi": "Science Fiction",
    "scifi": "Science Fiction",
    "science-fiction": "Science Fiction",
    "tv film": "TV Movie",
    "tv-movie": "TV Movie",
    "musical": "Music",
    "historical": "History",
    "documentary film": "Documentary",
    "animated": "Animation",
}

_BY_LOWER = {name.lower(): name for name in TMDB_GENRES} | _ALIASES


def canonical_genre(name: str) -> str | None:
    """The TMDB spelling of a genre name, or None when it is not a genre."""
    return _BY_LOWER.get(" ".join(name.split()).lower())
