"""Writers of tiny synthetic data files, for edge cases the real files lack."""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

METADATA_HEADER = (
    "adult,belongs_to_collection,budget,genres,homepage,id,imdb_id,original_language,"
    "original_title,overview,popularity,poster_path,production_companies,production_countries,"
    "release_date,revenue,runtime,spoken_languages,status,tagline,title,video,vote_average,"
    "vote_count"
).split(",")


def metadata_row(
    movie_id: str, title: str, overview: str, genres: str, language: str = "en"
) -> dict[str, str]:
    """A row of Kaggle's movies_metadata.csv with the columns tgplus reads filled in."""
    row = dict.fromkeys(METADATA_HEADER, "")
    row.update(
        id=movie_id,
        title=title,
        original_title=title,
        overview=overview,
        genres=genres,
        original_language=language,
        imdb_id=f"tt{int(movie_id):07d}" if movie_id.isdigit() else "",
    )
    return row


def shifted_metadata_row() -> dict[str, str]:
    """One of the full file's column-shifted rows: a date as id, companies as genres."""
    row = dict.fromkeys(METADATA_HEADER, "")
    row.update(
        adult=" - Written by Ørnås",
        belongs_to_collection="0.065736",
        budget="/ff9qCepilowshEtG2GYWwzt2bs4.jpg",
        genres="[{'name': 'Carousel Productions', 'id': 11176}, "
        "{'name': 'Vision View Entertainment', 'id': 11602}]",
        homepage="[{'iso_3166_1': 'CA', 'name': 'Canada'}]",
        id="1997-08-20",
        imdb_id="0",
        original_language="104.0",
        original_title="[{'iso_639_1': 'en', 'name': 'English'}]",
        overview="Released",
    )
    return row


def free_port() -> int:
    """A local TCP port nothing listens on (for servers to start, or to find nobody at)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def genre_literal(*names: str) -> str:
    return repr([{"id": i, "name": name} for i, name in enumerate(names)])


def write_csv(path: Path, header: Sequence[str], rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# Descriptions written for these tests, one clear genre each.
CRIME = "A detective hunts a ruthless gang of bank robbers through the city's criminal underworld."
HORROR = "A demon haunts a family in their remote farmhouse, killing them one by one at night."
COMEDY = "Two clumsy friends stumble into hilarious misadventures at a chaotic wedding party."
SPACE = "Astronauts aboard a starship travel through a wormhole to an alien planet in deep space."


JUSTWATCH_HEADER = (
    "id,title,type,description,release_year,age_certification,runtime,genres,"
    "production_countries,seasons,imdb_id,imdb_score,imdb_votes,tmdb_popularity,tmdb_score"
).split(",")


def justwatch_row(
    title: str, description: str, genres: str, *, kind: str = "MOVIE", imdb_id: str = ""
) -> dict[str, str]:
    """A row of a JustWatch titles.csv with the columns tgplus reads filled in."""
    row = dict.fromkeys(JUSTWATCH_HEADER, "")
    row.update(
        id=f"tm{zlib.crc32(title.encode())}",
        title=title,
        type=kind,
        description=description,
        genres=genres,
        imdb_id=imdb_id,
    )
    return row
