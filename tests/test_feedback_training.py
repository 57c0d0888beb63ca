"""Editors' answers back into training: overriding a file's genres, adding films, counting."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import assert_one_line_error, run
from tgplus.data import load_movies
from tgplus.data.genres import DEFAULT_TAXONOMY
from tgplus.feedback import FeedbackRepository, FeedbackStore, NewFeedback
from tgplus.feedback.corrections import apply_corrections, read_corrections
from tgplus.feedback.models import utc_now

NEW_FILM = "An old lighthouse keeper teaches a stray dog to sail across the northern sea."


def train_majority(data: Path, out: Path, feedback: str, *more: str) -> tuple[int, str, str]:
    """`tgplus train` of the quick majority kind on `data` with the feedback at `feedback`."""
    return run(
        "train", "--data", data, "--kind", "majority", "--out", out, "--feedback", feedback, *more
    )


@pytest.fixture
def answered(database_url: str, small_data: Path) -> str:
    """Answers for the first film of `small_data` (twice) and for a film no file holds."""
    film = load_movies([small_data]).movies[0]
    store = FeedbackStore(database_url)
    store.upgrade()
    answers = [
        # the older answer, then the latest, in other spacing and case: the same film
        (film.overview, ("Comedy",), timedelta(hours=2)),
        ("  " + film.overview.upper().replace(" ", "  ") + " ", ("Western",), timedelta(0)),
        (NEW_FILM, ("Family", "Adventure"), timedelta(0)),
        ("A plot whose genres no taxonomy knows.", ("Noir",), timedelta(0)),
    ]
    with store.session() as session:
        repository = FeedbackRepository(store, session)
        for description, genres, age in answers:
            item = NewFeedback(description=description, genres=genres, suggested=("Drama",))
            repository.add_feedback(item, now=utc_now() - age)
    store.dispose()
    return database_url


def test_the_latest_answer_overrides_a_films_genres_and_new_films_are_added(
    answered: str, small_data: Path
) -> None:
    movies = load_movies([small_data]).movies
    corrections = read_corrections(answered, DEFAULT_TAXONOMY)
    assert corrections.rows == 4
    assert dict(corrections.skipped) == {
        "older answer for the same film": 1,
        "no genre in the taxonomy": 1,
    }
    corrected = apply_corrections(movies, corrections)
    assert (corrected.overridden, corrected.added) == (1, 1)
    assert len(corrected.movies) == len(movies) + 1
    first = corrected.movies[0]
    assert (first.id, first.title, first.overview) == (
        movies[0].id,
        movies[0].title,
        movies[0].overview,
    )
    assert first.genres == ("Western",)
    assert first.known is None  # the editor saw every genre
    assert first.sources == (*movies[0].sources, corrections.source)
    assert corrected.movies[1:-1] == movies[1:]
    added = corrected.movies[-1]
    assert (added.overview, added.genres) == (NEW_FILM, ("Family", "Adventure"))


def test_train_with_feedback_counts_what_it_used(
    answered: str, small_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    code, stdout, _ = train_majority(small_data, out, answered, "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["feedback"]["rows"] == 4
    assert result["feedback"]["films"] == 2
    assert (result["feedback"]["overridden"], result["feedback"]["added"]) == (1, 1)
    rows = result["rows"]
    assert rows["train"] + rows["validation"] + rows["test"] == rows["kept"] + 1
    saved = json.loads((out / "metadata.json").read_text())
    assert saved["feedback"] == result["feedback"]
    assert "hunter2" not in saved["feedback"]["database"]


def test_train_with_an_unreachable_feedback_database_fails_before_training(
    small_data: Path, tmp_path: Path, postgres_down_url: str
) -> None:
    code, _, stderr = train_majority(small_data, tmp_path / "m", postgres_down_url)
    assert code == 2
    assert "is unavailable" in stderr
    assert "hunter2" not in stderr
    assert not (tmp_path / "m").exists()


def test_train_with_a_missing_sqlite_feedback_file_fails_and_creates_nothing(
    small_data: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "feedback.sqlite3"
    url = f"sqlite:///{missing}"
    code, _, stderr = train_majority(small_data, tmp_path / "m", url)
    assert_one_line_error(code, stderr, "--feedback", "no database at")
    assert not missing.parent.exists()
    assert not (tmp_path / "m").exists()


def test_train_does_not_migrate_the_feedback_database(small_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    sqlite3.connect(path).close()  # an existing database without the feedback tables
    code, _, stderr = train_majority(small_data, tmp_path / "m", f"sqlite:///{path}")
    assert_one_line_error(code, stderr, "--feedback", "tgplus db upgrade")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []
    assert not (tmp_path / "m").exists()


def test_a_bad_feedback_url_names_the_option(small_data: Path, tmp_path: Path) -> None:
    code, _, stderr = train_majority(small_data, tmp_path / "m", "not a url")
    assert_one_line_error(code, stderr, "--feedback")
    assert "TGPLUS_DATABASE_URL" not in stderr


def test_evaluate_applies_the_feedback_the_model_was_trained_with(
    answered: str, small_data: Path, tmp_path: Path
) -> None:
    movies = load_movies([small_data]).movies
    assert "Western" not in movies[0].genres  # the editor's latest answer makes it one
    out = tmp_path / "model"
    assert train_majority(small_data, out, answered)[0] == 0

    def measured(*options: str | Path) -> dict[str, Any]:
        code, stdout, stderr = run("evaluate", "--model", out, "--split", "all", "--json", *options)
        assert code == 0, stderr
        result: dict[str, Any] = json.loads(stdout)
        return result

    plain = measured("--data", small_data)
    assert plain["movies"] == len(movies)
    given = measured("--data", small_data, "--feedback", answered)
    assert given["movies"] == len(movies) + 1  # the film only an editor answered for
    western = given["per_genre"]["Western"]["support"]
    assert western == plain["per_genre"]["Western"]["support"] + 1
    saved = json.loads((out / "metadata.json").read_text())["feedback"]["database"]
    if "***" in saved:  # a database with a password: the model cannot say how to reach it
        code, _, stderr = run("evaluate", "--model", out, "--json")
        assert_one_line_error(code, stderr, "--feedback DATABASE_URL")
    else:  # by default, the training files and the database the model was trained with
        default = measured()
        assert (default["movies"], default["per_genre"]) == (given["movies"], given["per_genre"])
