"""Streaming catalogues: the JustWatch format, genre mappings, taxonomies, cross-file duplicates."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import (
    COMEDY,
    CRIME,
    HORROR,
    JUSTWATCH_HEADER,
    SPACE,
    justwatch_row,
    write_csv,
    write_jsonl,
)
from tgplus.data import (
    SourceFormat,
    detect_format,
    load_mapping,
    load_movies,
    load_taxonomy,
    split_by_key,
    split_key,
)
from tgplus.data.genres import JUSTWATCH_NAMES
from tgplus.errors import DataError


def _records(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


# -- the real catalogues -----------------------------------------------------------------------


def test_justwatch_is_detected_and_every_row_accounted_for(netflix: Path) -> None:
    assert detect_format(netflix) is SourceFormat.JUSTWATCH
    records = _records(netflix)
    shows = sum(r["type"] == "SHOW" for r in records)
    table = load_movies([netflix])
    file = table.report.files[0]
    assert file.rows_read == len(records)
    assert file.rows_read == file.rows_kept + sum(file.skipped.values())
    assert file.skipped["show, not a movie"] == shows
    assert all(m.id is None for m in table.movies)  # JustWatch ids are not TMDB ids


def test_justwatch_movie_fields(netflix: Path) -> None:
    taxi = next(m for m in load_movies([netflix]).movies if m.title == "Taxi Driver")
    assert taxi.genres == ("Crime", "Drama")
    assert taxi.imdb_id == "tt0075314"
    assert taxi.overview.startswith("A mentally unstable Vietnam War veteran")
    # JustWatch cannot say Adventure: the movie carries a partial-label mask.
    assert taxi.known is not None
    assert not taxi.can_say("Adventure")
    assert taxi.can_say("Documentary")


def test_keep_shows(netflix: Path) -> None:
    movies_only = load_movies([netflix])
    with_shows = load_movies([netflix], keep_shows=True)
    assert "show, not a movie" not in with_shows.report.skipped
    assert len(with_shows.movies) > len(movies_only.movies) + 1500


def test_justwatch_vocabulary_maps_as_documented(justwatch: Path) -> None:
    table = load_movies([justwatch])
    assert len(table.report.files) == 11
    names = {name for file in table.report.files for name in file.genre_names}
    assert names <= set(JUSTWATCH_NAMES)  # the built-in mapping knows every name in use
    assert table.report.rejected_genre_names.keys() == {"european", "sport", "reality"}
    netflix = next(f for f in table.report.files if "netflix" in f.path)
    assert netflix.mapped_to["documentation"] == ("Documentary",)
    assert netflix.mapped_to["scifi"] == ("Science Fiction",)
    assert {"Adventure", "Mystery", "TV Movie", "Foreign"}.isdisjoint(netflix.expressible)
    documentaries = sum("Documentary" in m.genres for m in table.movies)
    assert documentaries > 2000


def test_same_film_across_catalogues_is_one_movie(justwatch: Path, metadata: Path) -> None:
    table = load_movies([justwatch, metadata])
    imdb = [m.imdb_id for m in table.movies if m.imdb_id is not None]
    assert len(imdb) == len(set(imdb))
    both = [m for m in table.movies if len(m.sources) > 1]
    assert len(both) > 1000
    crossing = [m for m in both if any("movies_metadata" in s for s in m.sources)]
    assert crossing, "some catalogue films are also in The Movies Dataset sample"
    # A copy from a TMDB file brings its id, and its full vocabulary lifts the mask.
    assert all(m.id is not None and m.known is None for m in crossing)
    # Every later copy is counted as a duplicate (a file may also repeat a film itself).
    summed = sum(f.skipped["duplicate"] for f in table.report.files)
    assert summed >= sum(len(m.sources) - 1 for m in table.movies)


def test_split_is_the_same_whatever_the_file_order(netflix: Path, top10k: Path) -> None:
    forward = split_by_key(load_movies([netflix, top10k]).movies)
    backward = split_by_key(load_movies([top10k, netflix]).movies)
    assert {split_key(m) for m in forward.test} == {split_key(m) for m in backward.test}
    assert not {split_key(m) for m in forward.test} & {split_key(m) for m in forward.train}


# -- synthetic edge cases ----------------------------------------------------------------------


def test_justwatch_rows_edge_cases(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    rows = [
        justwatch_row("Kept", CRIME, "['crime', 'thriller', 'european']", imdb_id="tt0000011"),
        justwatch_row("Show", HORROR, "['horror']", kind="SHOW"),
        justwatch_row("Broken", COMEDY, "['comedy', "),
        justwatch_row("Code", SPACE, f"[__import__('pathlib').Path('{marker}').touch()]"),
        justwatch_row("Dicts", SPACE, "[{'name': 'scifi'}]"),
        justwatch_row("Huge", SPACE, "['scifi', " + "'x', " * 3000 + "]"),
        justwatch_row("Sport only", "Two rival teams meet in the final.", "['sport']"),
        justwatch_row("Same film", CRIME + " ", "['drama']", imdb_id="tt0000011"),
    ]
    path = write_csv(tmp_path / "titles.csv", JUSTWATCH_HEADER, rows)
    table = load_movies([path])
    assert not marker.exists()  # the genres cell was never run as code
    assert dict(table.report.skipped) == {
        "show, not a movie": 1,
        "unparsable genres": 4,
        "unknown genre names": 1,
        "duplicate": 1,
    }
    (kept,) = table.movies
    assert kept.genres == ("Crime", "Thriller", "Drama")  # the duplicate's genres merged in
    assert table.report.files[0].merged_new_genres == 1
    assert table.report.files[0].mapped_to["european"] == ()


def test_all_unmapped_catalogue_is_one_line_error(tmp_path: Path) -> None:
    from tgplus.training import train

    rows = [justwatch_row(f"Match {i}", f"Final number {i}.", "['sport']") for i in range(5)]
    path = write_csv(tmp_path / "titles.csv", JUSTWATCH_HEADER, rows)
    with pytest.raises(DataError, match=r"no usable movies to train on .*5 unknown genre names"):
        train([path], kind="majority")


# -- mapping and taxonomy files ----------------------------------------------------------------


def test_mapping_file_maps_to_several_none_or_one(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(
        "source,target\n"
        "# my catalogue's names\n"
        "Sci-Fi/Fantasy,Science Fiction\n"
        "Sci-Fi/Fantasy,fantasy\n"
        "Stand-Up,Comedy\n"
        "Anime,\n"
        "drama,Romance\n",
        encoding="utf-8",
    )
    data = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"overview": SPACE, "genres": ["Sci-Fi/Fantasy"]},
            {"overview": COMEDY, "genres": ["stand-up", "Anime"]},
            {"overview": CRIME, "genres": ["Drama", "Crime"]},
            {"overview": HORROR, "genres": ["Anime"]},
        ],
    )
    table = load_movies([data], mapping=load_mapping(mapping))
    assert [m.genres for m in table.movies] == [
        ("Science Fiction", "Fantasy"),
        ("Comedy",),
        ("Romance", "Crime"),  # the user's mapping overrides the taxonomy's own name
    ]
    assert dict(table.report.skipped) == {"unknown genre names": 1}
    assert table.report.rejected_genre_names == {"Anime": 2}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("source,target\nSci-Fi,Space Opera\n", "line 2: target 'Space Opera' is not a genre"),
        ("Sci-Fi,Science Fiction,extra\n", "line 1: expected two fields"),
        ("Sci-Fi\n", "line 1: expected two fields"),
        (",Drama\n", "line 1: the source name is empty"),
        ("# nothing\n", "no mapping lines"),
    ],
)
def test_bad_mapping_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "mapping.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_mapping(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_taxonomy_file(tmp_path: Path) -> None:
    path = tmp_path / "genres.txt"
    path.write_text("# ours\nFunny\nScary\n\nTrue Story\n", encoding="utf-8")
    taxonomy = load_taxonomy(path)
    assert taxonomy.genres == ("Funny", "Scary", "True Story")
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(
        "comedy,Funny\nhorror,scary\ndocumentation,True Story\nCrime,\n", encoding="utf-8"
    )
    rows = [
        justwatch_row("A", COMEDY, "['comedy', 'crime']"),
        justwatch_row("B", HORROR, "['horror', 'thriller']"),
        justwatch_row("C", CRIME, "['thriller']"),
    ]
    data = write_csv(tmp_path / "titles.csv", JUSTWATCH_HEADER, rows)
    table = load_movies([data], taxonomy=taxonomy, mapping=load_mapping(mapping, taxonomy))
    assert [m.genres for m in table.movies] == [("Funny",), ("Scary",)]
    assert table.report.files[0].expressible == {"Funny", "Scary", "True Story"}
    assert table.movies[0].known is None  # the file can say every genre of this taxonomy


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Funny\nfunny\n", "line 2: genre 'funny' repeats line 1"),
        ("Funny\n", "declares 1 genre(s)"),
        ("Funny, Scary\nSad\n", "line 1: 'Funny, Scary' holds a comma"),
    ],
)
def test_bad_taxonomy_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "genres.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_taxonomy(path)
    assert expected in str(raised.value)


def test_directory_reads_every_movie_file_below_it(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    write_jsonl(tmp_path / "a" / "one.jsonl", [{"overview": CRIME, "genres": ["Crime"]}])
    write_csv(
        tmp_path / "a" / "b" / "titles.csv",
        JUSTWATCH_HEADER,
        [justwatch_row("H", HORROR, "['horror']")],
    )
    (tmp_path / "notes.csv").write_text("what,when\nx,y\n", encoding="utf-8")  # not movies
    table = load_movies([tmp_path])
    # In sorted path order: a/b/titles.csv before a/one.jsonl.
    assert [Path(f.path).name for f in table.report.files] == ["titles.csv", "one.jsonl"]
    assert [m.genres for m in table.movies] == [("Horror",), ("Crime",)]


def test_masked_labels_are_unknown_not_negative() -> None:
    from tgplus.metrics import genre_metrics, tune_thresholds
    from tgplus.models.linear import LinearHead

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4)).astype(np.float32)
    labels = np.zeros((60, 2), dtype=bool)
    labels[:, 0] = features[:, 0] > 0
    labels[:30, 1] = features[:30, 1] > 0
    known = np.ones_like(labels)
    known[30:, 1] = False  # the last 30 rows come from a source that cannot say genre 1
    masked = LinearHead(c=1.0, n_jobs=1).fit(features, labels, known)
    subset = LinearHead(c=1.0, n_jobs=1).fit(features[:30], labels[:30])
    np.testing.assert_allclose(masked.coef_[:, 1], subset.coef_[:, 1], rtol=1e-4)
    unmasked = LinearHead(c=1.0, n_jobs=1).fit(features, labels)
    assert not np.allclose(masked.coef_[:, 1], unmasked.coef_[:, 1], rtol=1e-2)

    scores = np.array([[0.9, 0.8], [0.2, 0.9]], dtype=np.float32)
    truth = np.array([[True, False], [False, False]])
    told = np.array([[True, True], [True, False]])
    # Row 2 tops with genre 1, which its source cannot say: its top is genre 0 instead.
    metrics = genre_metrics(scores, scores >= 0.5, truth, ["A", "B"], told)
    assert metrics["per_genre"]["B"]["precision"] == 0.0  # row 1's B is a false alarm
    assert metrics["partial_label_movies"] == 1
    unmasked_metrics = genre_metrics(scores, scores >= 0.5, truth, ["A", "B"])
    assert metrics["micro_f1"] > unmasked_metrics["micro_f1"]
    # Three high-scoring rows that cannot say the genre would push its threshold up.
    column = np.array([[0.6], [0.9], [0.9], [0.9], [0.95]], dtype=np.float32)
    truth = np.array([[True], [False], [False], [False], [True]])
    told = np.array([[True], [False], [False], [False], [True]])
    assert tune_thresholds(column, truth)[0] > 0.9
    assert tune_thresholds(column, truth, known=told)[0] == pytest.approx(0.6)
