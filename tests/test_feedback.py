"""The feedback store on real SQLite and PostgreSQL: migrations, writes, deletion, quality."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from tgplus.errors import StoreError
from tgplus.feedback import (
    FeedbackRepository,
    FeedbackStore,
    NewFeedback,
    ServedPrediction,
    measure_quality,
)
from tgplus.feedback.models import utc_now
from tgplus.feedback.store import engine_url

CRIME_FEEDBACK = NewFeedback(
    description="A detective hunts a gang of bank robbers.",
    title="Heat",
    suggested=("Crime", "Thriller"),
    genres=("Crime", "Drama"),
    editor="ana",
)


def repository(store: FeedbackStore) -> FeedbackRepository:
    """A repository over a new session; each method's transaction returns its connection."""
    return FeedbackRepository(store, Session(store.engine, expire_on_commit=False))


@pytest.fixture
def open_store() -> Iterator[Callable[[str], FeedbackStore]]:
    """Open stores; their connections are closed after the test."""
    opened: list[FeedbackStore] = []

    def open_one(url: str) -> FeedbackStore:
        opened.append(FeedbackStore(url))
        return opened[-1]

    yield open_one
    for store in opened:
        store.dispose()


@pytest.fixture
def store(database_url: str, open_store: Callable[[str], FeedbackStore]) -> FeedbackStore:
    store = open_store(database_url)
    store.upgrade()
    return store


# -- migrations --------------------------------------------------------------------------------


def test_an_empty_database_is_created_and_upgrading_again_changes_nothing(
    database_url: str, open_store: Callable[[str], FeedbackStore]
) -> None:
    store = open_store(database_url)
    assert store.revision() is None
    first = store.upgrade()
    assert (first.before, first.after) == (None, "0002")
    again = store.upgrade()
    assert again.before == again.after == "0002"
    assert {"feedback", "predictions"} <= set(inspect(store.engine).get_table_names())


def test_an_older_schema_is_migrated_and_keeps_its_rows(
    database_url: str, open_store: Callable[[str], FeedbackStore]
) -> None:
    store = open_store(database_url)
    store.upgrade("0001")
    with store.engine.begin() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("feedback")}
        assert "prediction_id" not in columns
        connection.execute(
            text(
                "INSERT INTO feedback (created_at, description, title, suggested, genres, "
                "editor, note, model_id, fingerprint) VALUES (:t, 'old text', '', '[\"Drama\"]', "
                "'[\"Comedy\"]', 'bo', '', '', 'x')"
            ),
            {"t": utc_now()},
        )
    done = store.upgrade()
    assert (done.before, done.after) == ("0001", "0002")
    rows = repository(store).feedback()
    assert [(r.description, r.genres, r.prediction_id) for r in rows] == [
        ("old text", ["Comedy"], None)
    ]


def test_workers_starting_together_migrate_once(
    database_url: str, open_store: Callable[[str], FeedbackStore]
) -> None:
    stores = [open_store(database_url) for _ in range(4)]
    results: list[object] = []
    threads = [threading.Thread(target=lambda s=s: results.append(s.upgrade())) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(str(getattr(r, "before", r)) for r in results) == ["0002", "0002", "0002", "None"]


def test_a_new_sqlite_database_opens_while_another_process_writes(
    tmp_path: Path, open_store: Callable[[str], FeedbackStore]
) -> None:
    # Switching to WAL is the one step SQLite does not queue behind a writer by itself.
    path = tmp_path / "feedback.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (id INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    finished = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    finished.start()
    try:
        done = open_store(f"sqlite:///{path}").upgrade()
    finally:
        finished.join()
        writer.close()
    assert (done.before, done.after) == (None, "0002")


# -- writing -----------------------------------------------------------------------------------


def test_the_same_answer_within_a_minute_is_stored_once(store: FeedbackStore) -> None:
    repo = repository(store)
    now = utc_now()
    first = repo.add_feedback(CRIME_FEEDBACK, now=now)
    assert first.created
    spaced = NewFeedback(
        description="  a detective hunts a gang of  bank robbers. ",
        title="heat",
        suggested=("Crime",),
        genres=("Drama", "Crime"),
        editor="ana",
    )
    again = repo.add_feedback(spaced, now=now + timedelta(seconds=59))
    assert (again.id, again.created) == (first.id, False)
    other_editor = replace(CRIME_FEEDBACK, editor="bo")
    assert repo.add_feedback(other_editor, now=now).created
    later = repo.add_feedback(CRIME_FEEDBACK, now=now + timedelta(seconds=61))
    assert later.created
    assert later.id != first.id
    assert repo.counts()["feedback"] == 3


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(
    store: FeedbackStore, database_url: str, open_store: Callable[[str], FeedbackStore]
) -> None:
    """8 threads over two stores (as two server processes would have), each with its own
    session: 20 distinct answers each, plus one answer they all send."""
    errors: list[BaseException] = []
    created: list[bool] = []
    stores = [store, open_store(database_url)]

    def write(worker: int) -> None:
        repo = repository(stores[worker % 2])
        try:
            for number in range(20):
                item = replace(
                    CRIME_FEEDBACK,
                    description=f"{CRIME_FEEDBACK.description} {worker}-{number}",
                )
                assert repo.add_feedback(item).created
                created.append(repo.add_feedback(CRIME_FEEDBACK).created)
        except BaseException as error:
            errors.append(error)
        finally:
            repo.session.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert created.count(True) == 1  # the shared answer, stored once
    rows = repository(store).feedback()
    assert len(rows) == 8 * 20 + 1
    assert len({r.description for r in rows}) == len(rows)


def test_recorded_predictions_get_short_distinct_ids(store: FeedbackStore) -> None:
    repo = repository(store)
    served = [ServedPrediction(f"plot {i}", "", ("Drama",), "m1") for i in range(50)]
    ids = repo.record_predictions(served)
    assert len(set(ids)) == 50
    assert all(len(i) == 8 for i in ids)
    found = repo.prediction(ids[7])
    assert found is not None
    assert (found.description, found.genres, found.model_id) == ("plot 7", ("Drama",), "m1")
    assert repo.prediction("nothere") is None


def test_deleting_one_row_and_purging_old_ones(store: FeedbackStore) -> None:
    repo = repository(store)
    now = utc_now()
    old = repo.add_feedback(CRIME_FEEDBACK, now=now - timedelta(days=40))
    recent = repo.add_feedback(replace(CRIME_FEEDBACK, editor="bo"), now=now)
    [prediction] = repo.record_predictions([ServedPrediction("plot", "", ("Drama",), "m")])
    assert repo.delete_feedback(recent.id)
    assert not repo.delete_feedback(recent.id)
    purged = repo.purge(now - timedelta(days=30))
    assert (purged.feedback, purged.predictions) == (1, 0)
    assert repo.counts()["feedback"] == 0
    assert repo.delete_prediction(prediction)
    assert repo.counts()["predictions"] == 0
    assert old.id != recent.id


def test_quality_counts_the_top_genre_precision_and_recall_per_genre(
    store: FeedbackStore,
) -> None:
    repo = repository(store)
    answers = [
        (("Crime", "Thriller"), ("Crime", "Drama")),  # top kept; Thriller wrong; Drama missed
        (("Comedy",), ("Romance",)),  # top not kept
        (("Drama", "Crime"), ("Drama", "Crime")),  # all right
    ]
    for number, (suggested, genres) in enumerate(answers):
        item = NewFeedback(description=f"plot {number}", suggested=suggested, genres=genres)
        repo.add_feedback(item)
    quality = repo.quality(window=100)
    assert quality.feedback == 3
    assert quality.top_kept_share == pytest.approx(2 / 3)
    assert quality.precision == pytest.approx(3 / 5)  # Crime, Crime, Drama of 5 suggested
    assert quality.recall == pytest.approx(3 / 5)  # of Crime, Drama, Romance, Drama, Crime
    crime = quality.per_genre["Crime"]
    assert (crime.suggested, crime.chosen, crime.agreed) == (2, 2, 2)
    assert quality.per_genre["Thriller"].precision == 0.0
    assert quality.per_genre["Thriller"].recall is None
    assert quality.per_genre["Romance"].recall == 0.0
    assert repo.quality(window=1).feedback == 1  # only the latest
    assert repo.quality(window=1).top_kept_share == 1.0


def test_quality_of_nothing_is_undefined_not_zero() -> None:
    empty = measure_quality([])
    assert (empty.top_kept_share, empty.precision, empty.recall) == (None, None, None)


# -- when the database is not there ------------------------------------------------------------


def test_a_postgres_server_that_is_down_is_one_clear_error(
    open_store: Callable[[str], FeedbackStore], postgres_down_url: str
) -> None:
    store = open_store(postgres_down_url)
    with pytest.raises(StoreError, match=r"is unavailable .*TGPLUS_DATABASE_URL") as caught:
        store.upgrade()
    assert "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)  # the password is never shown


def test_a_read_only_sqlite_file_refuses_writes_clearly(
    tmp_path: Path, open_store: Callable[[str], FeedbackStore]
) -> None:
    path = tmp_path / "feedback.sqlite3"
    open_store(f"sqlite:///{path}").upgrade()
    read_only = open_store(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StoreError, match="readonly"):
        repository(read_only).add_feedback(CRIME_FEEDBACK)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://u@h/db", "mysql is not supported"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        FeedbackStore(url)


def test_a_url_that_cannot_be_parsed_is_not_repeated_in_the_error() -> None:
    # a colon too many in the password: the secret would land in logs and terminals
    with pytest.raises(StoreError, match="is not a database URL") as raised:
        FeedbackStore("postgresql//tgplus:s3cr3t@db/tgplus")
    assert "s3cr3t" not in str(raised.value)


def test_postgresql_urls_use_psycopg_3() -> None:
    assert engine_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert engine_url("postgres://u@h/db").startswith("postgresql+psycopg://")
    assert engine_url("sqlite:///data/x.db") == "sqlite:///data/x.db"
