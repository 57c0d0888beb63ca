"""Figures that describe a loaded table: what `tgplus data summary` prints."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tgplus.data.table import MovieTable, genre_counts


def _distribution(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "mean": 0, "p95": 0, "max": 0}
    array = np.asarray(values)
    return {
        "min": int(array.min()),
        "median": float(np.median(array)),
        "mean": round(float(array.mean()), 1),
        "p95": float(np.percentile(array, 95)),
        "max": int(array.max()),
    }


def summarise(table: MovieTable) -> dict[str, Any]:
    """A JSON-ready summary; rows_read == rows_kept + sum(rows_skipped.values())."""
    report = table.report
    movies = table.movies
    genres_per_movie = Counter(len(movie.genres) for movie in movies)
    return {
        "rows_read": report.rows_read,
        "rows_kept": report.rows_kept,
        "rows_skipped": dict(report.skipped.most_common()),
        "genres": dict(genre_counts(movies).most_common()),
        "genres_per_movie": {str(k): genres_per_movie[k] for k in sorted(genres_per_movie)},
        "overview_words": _distribution([len(movie.overview.split()) for movie in movies]),
        "languages": dict(Counter(movie.language or "unknown" for movie in movies).most_common()),
        "language_filter": sorted(report.languages) if report.languages is not None else "all",
        "rejected_genre_names": dict(report.rejected_genre_names.most_common()),
        "taxonomy": {"origin": report.taxonomy.origin, "genres": list(report.taxonomy.genres)},
        "mapping_file": report.mapping,
        "movies_with_partial_labels": sum(movie.known is not None for movie in movies),
        "files": [
            {
                "path": file.path,
                "format": file.format,
                "rows_read": file.rows_read,
                "rows_kept": file.rows_kept,
                "rows_skipped": dict(file.skipped.most_common()),
                "duplicates_that_added_genres": file.merged_new_genres,
                "genre_names": [
                    {"name": name, "count": count, "maps_to": list(file.mapped_to[name])}
                    for name, count in file.genre_names.most_common()
                ],
                "unmapped_genre_names": {
                    name: count
                    for name, count in file.genre_names.most_common()
                    if not file.mapped_to[name]
                },
                "expressible_genres": sorted(file.expressible),
            }
            for file in report.files
        ],
    }
