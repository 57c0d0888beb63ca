"""`tgplus db` and `tgplus feedback` on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run
from tgplus.data import load_movies
from tgplus.feedback import FeedbackRepository, FeedbackStore, NewFeedback
from tgplus.feedback.models import utc_now

ANSWERS = [
    NewFeedback(
        description="A detective hunts a gang of bank robbers.",
        title="Heat",
        suggested=("Crime", "Thriller"),
        genres=("Crime", "Drama"),
        editor="ana",
        note='says "drama", not thriller',
    ),
    NewFeedback(
        description="Two friends drive across the country.",
        suggested=("Comedy",),
        genres=("Comedy", "Adventure"),
        editor="bo",
    ),
]


@pytest.fixture
def filled(database_url: str) -> str:
    """The database with two answers, the first stored 40 days ago."""
    store = FeedbackStore(database_url)
    store.upgrade()
    with store.session() as session:
        repository = FeedbackRepository(store, session)
        repository.add_feedback(ANSWERS[0], now=utc_now() - timedelta(days=40))
        repository.add_feedback(ANSWERS[1])
    store.dispose()
    return database_url


def test_db_upgrade_creates_the_schema_then_has_nothing_to_do(database_url: str) -> None:
    code, stdout, _ = run("db", "upgrade", "--database", database_url)
    assert code == 0
    assert "schema 0002 (upgraded from None)" in stdout
    code, stdout, _ = run("db", "upgrade", "--database", database_url)
    assert "schema 0002 (already current)" in stdout


def test_the_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.sqlite3"
    monkeypatch.setenv("TGPLUS_DATABASE_URL", f"sqlite:///{path}")
    code, _, _ = run("db", "upgrade")
    assert code == 0
    assert path.is_file()
    code, stdout, _ = run("feedback", "stats")
    assert code == 0
    assert "0 feedback" in stdout


@pytest.mark.parametrize(
    "command", [("stats",), ("export", "--out", "x.csv"), ("purge", "--before", "90d")]
)
def test_reading_a_database_that_is_not_there_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    mistyped = tmp_path / "feedbak.sqlite3"
    code, _, stderr = run("feedback", *command, "--database", f"sqlite:///{mistyped}")
    assert_one_line_error(code, stderr, "--database", "no feedback database at", "db upgrade")
    monkeypatch.delenv("TGPLUS_DATABASE_URL", raising=False)
    code, _, stderr = run("feedback", *command)  # the default: data/feedback.sqlite3
    assert_one_line_error(code, stderr, "TGPLUS_DATABASE_URL", "data/feedback.sqlite3")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_export_is_a_movie_file_the_data_layer_reads(
    filled: str, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"corrections.{suffix}"
    code, stdout, _ = run("feedback", "export", "--out", out, "--database", filled)
    assert code == 0
    assert "2 feedback rows" in stdout
    movies = load_movies([out]).movies
    assert [(m.title, m.overview, m.genres) for m in movies] == [
        ("", ANSWERS[1].description, ("Comedy", "Adventure")),  # newest first
        ("Heat", ANSWERS[0].description, ("Crime", "Drama")),
    ]


def test_export_refuses_an_unknown_format(filled: str, tmp_path: Path) -> None:
    code, _, stderr = run("feedback", "export", "--out", tmp_path / "x.txt", "--database", filled)
    assert_one_line_error(code, stderr, "name it .csv or .jsonl")


def test_stats(filled: str) -> None:
    code, stdout, _ = run("feedback", "stats", "--json", "--database", filled)
    assert code == 0
    stats = json.loads(stdout)
    assert (stats["feedback"], stats["editors"], stats["predictions"]) == (2, 2, 0)
    assert stats["quality"]["top_kept"] == 1.0
    assert stats["quality"]["precision"] == pytest.approx(2 / 3)
    code, stdout, _ = run("feedback", "stats", "--database", filled)
    assert "2 feedback rows from 2 editors" in stdout
    assert "top genre kept 1.000" in stdout


def test_purge_deletes_only_what_is_older(filled: str) -> None:
    code, stdout, _ = run("feedback", "purge", "--before", "30d", "--database", filled)
    assert code == 0
    assert "deleted 1 feedback rows and 0 recorded predictions" in stdout
    _, stdout, _ = run("feedback", "stats", "--json", "--database", filled)
    assert json.loads(stdout)["feedback"] == 1
    code, stdout, _ = run("feedback", "purge", "--before", "2999-01-01", "--database", filled)
    assert "deleted 1 feedback rows" in stdout


def test_purge_refuses_a_date_it_cannot_read(filled: str) -> None:
    code, _, stderr = run("feedback", "purge", "--before", "last week", "--database", filled)
    assert_one_line_error(code, stderr, "is not a date")


def test_a_database_that_is_down_is_one_line_and_exit_2(
    postgres_down_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the line names where the URL came from: the option, else the environment
    code, _, stderr = run("feedback", "stats", "--database", postgres_down_url)
    assert_one_line_error(code, stderr, "is unavailable", "check --database,")
    assert "hunter2" not in stderr
    monkeypatch.setenv("TGPLUS_DATABASE_URL", postgres_down_url)
    code, _, stderr = run("feedback", "stats")
    assert_one_line_error(code, stderr, "is unavailable", "check TGPLUS_DATABASE_URL,")
