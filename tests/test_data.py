"""The data layer: every format, every quirk, nothing lost, a stable split."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from tests.fixtures import (
    METADATA_HEADER,
    genre_literal,
    metadata_row,
    shifted_metadata_row,
    write_csv,
    write_jsonl,
)
from tgplus.data import (
    TMDB_GENRES,
    Movie,
    Side,
    SkipReason,
    SourceFormat,
    SplitSettings,
    detect_format,
    load_movies,
    parse_languages,
    side_of,
    split_by_key,
    split_key,
)
from tgplus.data.table import normalise_text
from tgplus.errors import DataError


def csv_records(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as stream:
        return sum(1 for _ in csv.reader(stream)) - 1


# -- the real files ----------------------------------------------------------------------------


def test_real_files_every_row_is_kept_or_skipped(top10k: Path, metadata: Path) -> None:
    table = load_movies([top10k, metadata])
    report = table.report
    assert report.rows_read == csv_records(top10k) + csv_records(metadata)
    assert report.rows_read == report.rows_kept + sum(report.skipped.values())
    assert report.rows_kept == len(table.movies)
    for file in report.files:
        assert file.rows_read == file.rows_kept + sum(file.skipped.values())


def test_real_files_keep_only_tmdb_genres_and_english(top10k: Path, metadata: Path) -> None:
    movies = load_movies([top10k, metadata]).movies
    assert {genre for movie in movies for genre in movie.genres} == set(TMDB_GENRES)
    assert {movie.language for movie in movies} == {"en"}
    assert all(movie.overview.strip() and movie.genres for movie in movies)


def test_real_files_are_deduplicated_by_id_and_overview(top10k: Path, metadata: Path) -> None:
    table = load_movies([top10k, metadata])
    ids = [movie.id for movie in table.movies]
    overviews = [normalise_text(movie.overview) for movie in table.movies]
    assert len(ids) == len(set(ids))
    assert len(overviews) == len(set(overviews))
    # About 1,500 titles are in both files: the second file loses them as duplicates.
    assert table.report.files[1].skipped[SkipReason.DUPLICATE.value] > 1000


def test_first_file_wins_a_duplicate(top10k: Path, metadata: Path) -> None:
    forward = {m.id: m.source for m in load_movies([top10k, metadata]).movies}
    backward = {m.id: m.source for m in load_movies([metadata, top10k]).movies}
    assert forward[862] == str(top10k)  # Toy Story is in both files
    assert backward[862] == str(metadata)


def test_movies_metadata_genres_are_parsed(metadata: Path) -> None:
    toy_story = next(m for m in load_movies([metadata]).movies if m.id == 862)
    assert toy_story.genres == ("Animation", "Comedy", "Family")
    assert toy_story.title == "Toy Story"
    assert toy_story.text.startswith("Toy Story. Led by Woody")


def test_language_all_keeps_more_movies(top10k: Path) -> None:
    english = load_movies([top10k]).report
    everything = load_movies([top10k], languages=None).report
    assert everything.rows_kept > english.rows_kept
    assert SkipReason.LANGUAGE.value not in everything.skipped


# -- synthetic quirks --------------------------------------------------------------------------


def test_movies_metadata_quirks_are_counted(tmp_path: Path) -> None:
    rows = [
        metadata_row("1", "Kept", 'A "quoted" plot\nover two lines.', genre_literal("Drama")),
        shifted_metadata_row(),
        metadata_row("2", "Placeholder", "No overview found.", genre_literal("Drama")),
        metadata_row("3", "Empty", "  ", genre_literal("Drama")),
        metadata_row("1", "Same id", "Another plot entirely.", genre_literal("Drama")),
        metadata_row("4", "Same text", 'a  "QUOTED" plot over two lines.', genre_literal("Drama")),
        metadata_row("5", "French", "Un film.", genre_literal("Drama"), language="fr"),
        metadata_row("6", "No genre", "A plot with no genre.", "[]"),
        metadata_row("7", "Broken genres", "A plot.", "[{'id': 18, 'name': "),
        metadata_row("8", "Companies", "A plot.", genre_literal("Aniplex")),
        metadata_row("9", "Mixed", "Ghosts.", genre_literal("Horror", "Aniplex", "horror")),
    ]
    path = write_csv(tmp_path / "movies_metadata.csv", METADATA_HEADER, rows)
    table = load_movies([path])
    report = table.report
    assert detect_format(path) is SourceFormat.MOVIES_METADATA
    assert report.rows_read == len(rows)
    assert dict(report.skipped) == {
        "bad id": 1,
        "no overview": 2,
        "duplicate": 2,
        "language": 1,
        "no genre": 1,
        "unparsable genres": 1,
        "unknown genre names": 1,
    }
    assert [(m.id, m.genres) for m in table.movies] == [(1, ("Drama",)), (9, ("Horror",))]
    assert table.movies[0].overview == 'A "quoted" plot\nover two lines.'
    assert report.rejected_genre_names["Carousel Productions"] == 1
    assert report.rejected_genre_names["Aniplex"] == 2


def test_generic_csv_with_description_and_pipes(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "title,description,genres\n"
        "Alpha,A heist goes wrong.,Crime|Thriller\n"
        "Beta,Robots in space.,sci-fi|Action|Musical\n"
        "Gamma,A quiet life.,\n",
        encoding="utf-8",
    )
    table = load_movies([path])
    assert detect_format(path) is SourceFormat.CSV
    assert [(m.title, m.genres, m.id) for m in table.movies] == [
        ("Alpha", ("Crime", "Thriller"), None),
        ("Beta", ("Science Fiction", "Action", "Music"), None),
    ]
    assert dict(table.report.skipped) == {"no genre": 1}


def test_generic_csv_language_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "id,overview,genres,language\n"
        "10,A heist.,Crime,en\n"
        "tt0075314,A taxi driver in New York.,Crime,en\n"
        "s1,A heist again.,Crime,en\n"
        ",A romance in Paris.,Romance,fr\n"
        ",A western with no language.,Western,\n",
        encoding="utf-8",
    )
    table = load_movies([path])
    # a catalogue's own ids are not TMDB ids, but the rows are movies all the same
    assert [(m.id, m.imdb_id, m.overview) for m in table.movies] == [
        (10, None, "A heist."),
        (None, "tt0075314", "A taxi driver in New York."),
        (None, None, "A heist again."),
        (None, None, "A western with no language."),
    ]
    assert dict(table.report.skipped) == {"language": 1}


def test_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "movies.jsonl",
        [
            {"id": 5, "title": "A", "overview": "Ghosts.", "genres": ["Horror"], "language": "en"},
            {"description": "Gags.", "genres": "Comedy|Family"},
            {"overview": "Bad genres.", "genres": {"name": "Drama"}},
            {"overview": ["not", "text"], "genres": ["Drama"]},
        ],
    )
    table = load_movies([path])
    assert detect_format(path) is SourceFormat.JSONL
    assert [(m.id, m.genres) for m in table.movies] == [
        (5, ("Horror",)),
        (None, ("Comedy", "Family")),
    ]
    assert dict(table.report.skipped) == {"unparsable genres": 1, "malformed row": 1}


def test_format_option_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("id,title,genre,original_language,overview\n7,T,Drama,en,Plot.\n", "utf-8")
    assert detect_format(path) is SourceFormat.TMDB_TOP10K
    with pytest.raises(DataError, match="missing column 'genres'"):
        load_movies([path], source_format=SourceFormat.CSV)


def test_short_row_is_counted_as_malformed(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("overview,genres\nA plot.,Drama\nonly one field\n", encoding="utf-8")
    assert dict(load_movies([path]).report.skipped) == {"malformed row": 1}


def test_catalogue_without_genres_loads_for_scoring(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_text("title,overview\nA,A plot.\nB,Another plot.\n", encoding="utf-8")
    assert len(load_movies([path], require_genres=False).movies) == 2
    with pytest.raises(DataError, match="missing column 'genres'"):
        load_movies([path])


def test_parse_languages() -> None:
    assert parse_languages("en") == frozenset({"en"})
    assert parse_languages(" EN, fr ") == frozenset({"en", "fr"})
    assert parse_languages("all") is None
    with pytest.raises(DataError, match="--language is empty"):
        parse_languages(" , ")


# -- bad files ---------------------------------------------------------------------------------


def _empty_directory(tmp_path: Path) -> Path:
    """A directory whose only CSV file is not a movie file."""
    directory = tmp_path / "no-movies"
    directory.mkdir()
    (directory / "scores.csv").write_text("id,genre\n1,Drama\n", encoding="utf-8")
    return directory


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    def write(name: str, content: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    lines = b"overview,genres\nA plot.,Drama\n"
    return {
        "missing": (tmp_path / "nope.csv", "no such file"),
        "directory": (_empty_directory(tmp_path), "no movie files"),
        "empty": (write("empty.csv", b""), "the file is empty"),
        "columns": (write("cols.csv", b"name,year\nx,1999\n"), "unrecognised columns"),
        "binary": (write("blob.csv", bytes(range(256)) * 4), "binary file"),
        "zip": (write("movies.zip", b"PK\x03\x04rest"), "zip archive"),
        "latin1": (
            write("latin1.csv", lines + b"Caf\xe9 story.,Drama\n"),
            "line 3: not valid UTF-8",
        ),
        "quote": (
            write("quote.csv", lines + b'"Never closed,Drama\nMore.,Drama\n'),
            "line 3: unterminated quote",
        ),
        "json": (
            write("bad.jsonl", b'{"overview": "x", "genres": ["Drama"]}\n{oops\n'),
            "line 2: not valid JSON",
        ),
        # once "unrecognised columns (2], [1)": read as a CSV header
        "json array": (write("array.jsonl", b"[1, 2]\n"), "line 1 is not a JSON object"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "directory",
        "empty",
        "columns",
        "binary",
        "zip",
        "latin1",
        "quote",
        "json",
        "json array",
    ],
)
def test_bad_file_is_one_clear_error(tmp_path: Path, case: str) -> None:
    path, expected = _bad_files(tmp_path)[case]
    with pytest.raises(DataError) as raised:
        load_movies([path])
    message = str(raised.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_unterminated_quote_past_field_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    body = "".join(f"Plot number {i}.,Drama\n" for i in range(60_000))
    path.write_text('overview,genres\n"Never closed,Drama\n' + body, encoding="utf-8")
    with pytest.raises(DataError, match="line 2: unterminated quote"):
        load_movies([path])


def test_no_files_is_an_error() -> None:
    with pytest.raises(DataError, match="no input files"):
        load_movies([])


# -- the split ---------------------------------------------------------------------------------


def _movie(movie_id: int | None, overview: str = "plot", title: str = "t") -> Movie:
    return Movie(movie_id, title, overview, ("Drama",), "en", "test")


def test_split_sides_are_stable_whatever_the_order_or_subset(top10k: Path, metadata: Path) -> None:
    settings = SplitSettings(test_share=0.1, validation_share=0.1)
    both = split_by_key(load_movies([top10k, metadata]).movies, settings)
    test_keys = {split_key(m) for m in both.test}
    train_keys = {split_key(m) for m in both.train}
    assert not test_keys & train_keys

    reversed_order = split_by_key(load_movies([metadata, top10k]).movies, settings)
    assert {split_key(m) for m in reversed_order.test} == test_keys

    alone = split_by_key(load_movies([metadata]).movies, settings)
    assert {split_key(m) for m in alone.test} <= test_keys
    assert not {split_key(m) for m in alone.train} & test_keys

    shuffled = list(both.train + both.validation + both.test)
    random.Random(7).shuffle(shuffled)
    assert {split_key(m) for m in split_by_key(shuffled, settings).test} == test_keys


def test_split_shares_are_close_to_requested(top10k: Path) -> None:
    movies = load_movies([top10k]).movies
    split = split_by_key(movies, SplitSettings(test_share=0.1, validation_share=0.1))
    assert len(split.train) + len(split.validation) + len(split.test) == len(movies)
    assert 0.08 < len(split.test) / len(movies) < 0.12
    assert 0.08 < len(split.validation) / len(movies) < 0.12


def test_validation_share_never_moves_the_test_side() -> None:
    movies = [_movie(i) for i in range(1, 2000)]
    plain = split_by_key(movies, SplitSettings(test_share=0.2, validation_share=0.0))
    tuned = split_by_key(movies, SplitSettings(test_share=0.2, validation_share=0.3))
    assert plain.test == tuned.test
    assert not plain.validation
    assert set(tuned.validation) <= set(plain.train)


def test_split_key_without_id_uses_title_and_overview() -> None:
    a = _movie(None, "A  Plot", "Title")
    assert split_key(a) == split_key(_movie(None, "a plot", "title"))
    assert split_key(a) != split_key(_movie(None, "a plot", "other"))
    assert side_of(_movie(42), SplitSettings()) is side_of(_movie(42, "changed"), SplitSettings())
    assert side_of(_movie(42), SplitSettings(0.0, 0.0)) is Side.TRAIN


@pytest.mark.parametrize(("test", "validation"), [(-0.1, 0.0), (1.0, 0.0), (0.5, 0.5), (0.1, -1)])
def test_bad_split_settings(test: float, validation: float) -> None:
    with pytest.raises(DataError, match="out of range"):
        SplitSettings(test_share=test, validation_share=validation)


def test_scoring_keeps_rows_whose_genres_cannot_be_read(tmp_path: Path) -> None:
    rows = [metadata_row("1", "A", "A heist.", "[{'id': 18, 'name': ")]
    path = write_csv(tmp_path / "movies_metadata.csv", METADATA_HEADER, rows)
    assert load_movies([path]).report.skipped == {"unparsable genres": 1}
    scoring = load_movies([path], require_genres=False, deduplicate=False)
    assert [(m.id, m.genres) for m in scoring.movies] == [(1, ())]
