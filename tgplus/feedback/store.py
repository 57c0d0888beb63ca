"""The feedback store: one database (SQLite by default, PostgreSQL by URL) and its repository.

`FeedbackStore` owns the engine and the migrations; `FeedbackRepository`
does the work over one session (one per request in the API, one per command
in the CLI). Every database failure leaves here as a one-line `StoreError`,
so the API answers 503 and the CLI exits 2, never with a driver traceback.

SQLite runs in WAL mode: readers never wait, and a write transaction begins
IMMEDIATE, so writers queue on the database lock (waiting up to
`SQLITE_BUSY_SECONDS`) instead of failing when two processes write at once.
Within one process writers also queue on a lock of their own, which is much
cheaper than SQLite's sleep-and-retry when many threads write together. On
PostgreSQL a transaction-scoped advisory lock serialises the few writes that
must not race (the duplicate check, the migrations).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from tgplus.errors import StoreError
from tgplus.feedback.models import (
    PREDICTION_ID_CHARS,
    FeedbackRow,
    PredictionRow,
    utc_now,
)

log = logging.getLogger("tgplus.feedback")
P = ParamSpec("P")
R = TypeVar("R")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_SECONDS = 30
DUPLICATE_WINDOW = timedelta(minutes=1)
# Advisory lock keys (PostgreSQL): a fixed 64-bit number for the migrations, and
# per submission (the fingerprint's first 8 bytes), so that only identical
# answers wait for each other.
_MIGRATION_LOCK = 0x7467_706C_7573_0001


# -- records that cross the module boundary ----------------------------------------------------


def storable(text: str) -> str:
    """`text` as both engines can store it: no NUL characters, no lone surrogates.

    PostgreSQL refuses NUL in text, and neither engine can encode a lone
    surrogate (valid in JSON, not in UTF-8); neither carries meaning in a plot.
    """
    text = text.replace("\x00", "")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class NewFeedback:
    """An editor's answer, checked by the caller against the model's genres."""

    description: str
    genres: tuple[str, ...]
    suggested: tuple[str, ...]
    title: str = ""
    editor: str = ""
    note: str = ""
    model_id: str = ""
    prediction_id: str | None = None

    def fingerprint(self) -> str:
        """Same text, same genres, same editor: the same submission."""
        key = [
            " ".join(self.description.split()).lower(),
            " ".join(self.title.split()).lower(),
            sorted(self.genres),
            self.editor.strip(),
        ]
        return hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SavedFeedback:
    id: int
    created: bool
    """False when the same submission arrived within a minute and the earlier row stands."""


@dataclass(frozen=True, slots=True)
class ServedPrediction:
    description: str
    title: str
    genres: tuple[str, ...]
    model_id: str


@dataclass(frozen=True, slots=True)
class RecordedPrediction:
    id: str
    description: str
    title: str
    genres: tuple[str, ...]
    model_id: str


@dataclass(frozen=True, slots=True)
class Purged:
    feedback: int
    predictions: int


@dataclass(frozen=True, slots=True)
class GenreQuality:
    suggested: int
    """Times the model suggested the genre."""
    chosen: int
    """Times an editor said the genre is right."""
    agreed: int
    """Times both did."""

    @property
    def precision(self) -> float | None:
        return self.agreed / self.suggested if self.suggested else None

    @property
    def recall(self) -> float | None:
        return self.agreed / self.chosen if self.chosen else None


@dataclass(frozen=True, slots=True)
class Quality:
    """How the suggestions fared against the editors, over the latest feedback."""

    feedback: int
    top_kept: int
    """Rows where the editor kept the model's top genre."""
    per_genre: dict[str, GenreQuality] = field(default_factory=dict)

    @property
    def top_kept_share(self) -> float | None:
        return self.top_kept / self.feedback if self.feedback else None

    @property
    def precision(self) -> float | None:
        suggested = sum(g.suggested for g in self.per_genre.values())
        return sum(g.agreed for g in self.per_genre.values()) / suggested if suggested else None

    @property
    def recall(self) -> float | None:
        chosen = sum(g.chosen for g in self.per_genre.values())
        return sum(g.agreed for g in self.per_genre.values()) / chosen if chosen else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feedback": self.feedback,
            "top_kept": self.top_kept_share,
            "precision": self.precision,
            "recall": self.recall,
            "genres": {
                genre: {
                    "suggested": g.suggested,
                    "chosen": g.chosen,
                    "agreed": g.agreed,
                    "precision": g.precision,
                    "recall": g.recall,
                }
                for genre, g in sorted(self.per_genre.items())
            },
        }


def measure_quality(rows: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Quality:
    """Quality over (suggested, chosen) pairs; the first suggested genre is the top one."""
    counts: dict[str, list[int]] = {}
    top_kept = 0
    for suggested, chosen in rows:
        chosen_set = set(chosen)
        if suggested and suggested[0] in chosen_set:
            top_kept += 1
        for genre in set(suggested):
            counts.setdefault(genre, [0, 0, 0])[0] += 1
        for genre in chosen_set:
            counts.setdefault(genre, [0, 0, 0])[1] += 1
        for genre in chosen_set.intersection(suggested):
            counts[genre][2] += 1
    per_genre = {g: GenreQuality(*c) for g, c in counts.items()}
    return Quality(feedback=len(rows), top_kept=top_kept, per_genre=per_genre)


# -- errors ------------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _store_errors(
    method: Callable[Concatenate[FeedbackRepository, P], R],
) -> Callable[Concatenate[FeedbackRepository, P], R]:
    """Turn the driver's exceptions into a one-line StoreError naming the database."""

    @functools.wraps(method)
    def run(repository: FeedbackRepository, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(repository, *args, **kwargs)
        except DBAPIError as error:
            with contextlib.suppress(DBAPIError):
                repository.session.rollback()
            raise repository.store.unavailable(error) from None

    return run


# -- the database ------------------------------------------------------------------------------


def engine_url(url: str, setting: str = "TGPLUS_DATABASE_URL") -> str:
    """The SQLAlchemy URL for a database URL given as `setting`: postgresql:// means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The value is not repeated: a URL mistyped around its password would be logged.
        raise StoreError(
            f"{setting} is not a database URL; use sqlite:///path/feedback.db "
            "or postgresql://user:password@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres" or parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise StoreError(f"{setting}: {backend} is not supported; use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """The file an engine URL's SQLite database lives in (None: not SQLite, memory, or a URI)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or "mode=" in url:
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def missing_sqlite_file(url: str, setting: str = "TGPLUS_DATABASE_URL") -> Path | None:
    """The file a SQLite database URL names, when it is not there (None: it is, or the
    database is not a SQLite file). Readers refuse it: opening would create it empty."""
    file = sqlite_file(engine_url(url, setting))
    return file if file is not None and not file.is_file() else None


def head_revision() -> str | None:
    """The schema revision this tgplus's migrations end at."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


@dataclass(frozen=True, slots=True)
class Upgrade:
    before: str | None
    after: str | None


class FeedbackStore:
    """The database behind TGPLUS_DATABASE_URL: its engine, sessions and migrations."""

    def __init__(self, url: str, setting: str = "TGPLUS_DATABASE_URL") -> None:
        """`setting` is where the user gave `url`, as error messages name it."""
        self.url = url
        self.setting = setting
        full = engine_url(url, setting)
        parsed = make_url(full)
        self.shown_url = parsed.render_as_string(hide_password=True)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite:
                if (file := sqlite_file(full)) is not None:
                    file.parent.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(full, connect_args={"timeout": SQLITE_BUSY_SECONDS})
            else:
                self.engine = create_engine(
                    full,
                    pool_pre_ping=True,
                    pool_size=8,
                    max_overflow=24,
                    connect_args={"connect_timeout": 5},
                )
        except (ArgumentError, NoSuchModuleError, OSError) as error:
            raise StoreError(f"{self.shown_url}: cannot open ({_first_line(error)})") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock()
        self._thread = threading.local()
        if self.is_sqlite:
            _sqlite_settings(self.engine, self._thread)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a write transaction: on SQLite, one writer per process, begun IMMEDIATE."""
        if not self.is_sqlite:
            yield
            return
        with self._write_lock:
            self._thread.writing = True
            try:
                yield
            finally:
                self._thread.writing = False

    def unavailable(self, error: BaseException) -> StoreError:
        return StoreError(
            f"feedback database {self.shown_url} is unavailable ({_first_line(error)}); "
            f"check {self.setting}, that the database is running and writable, then retry"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def serialise(self, connection: Connection, key: int) -> None:
        """Hold a lock on `key` until the transaction ends (PostgreSQL; SQLite holds one anyway)."""
        if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already holds the write lock
            connection.execute(select(func.pg_advisory_xact_lock(key)))

    def upgrade(self, revision: str = "head") -> Upgrade:
        """Bring the schema to `revision`, once, even with several processes starting together."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.writing(), self.engine.begin() as connection:
                self.serialise(connection, _MIGRATION_LOCK)
                before = MigrationContext.configure(connection).get_current_revision()
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                after = MigrationContext.configure(connection).get_current_revision()
        except DBAPIError as error:
            raise self.unavailable(error) from None
        if before != after:
            log.info({"event": "database_upgraded", "from": before, "to": after})
        return Upgrade(before, after)

    def revision(self) -> str | None:
        """The schema revision the database is at (None: empty database)."""
        from alembic.runtime.migration import MigrationContext

        try:
            with self.engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except DBAPIError as error:
            raise self.unavailable(error) from None

    def dispose(self) -> None:
        self.engine.dispose()


def _use_wal(cursor: Any) -> None:
    """Switch a SQLite database to WAL, waiting for other writers like any write does.

    Switching needs the database to itself and SQLite answers "database is locked" at
    once instead of calling its busy handler, so processes opening a new database
    together would fail; retry for as long as a write may wait. The mode is stored in
    the file: only the first connections ever switch it.
    """
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_settings(engine: Engine, thread: threading.local) -> None:
    """WAL and a busy timeout on every SQLite connection; IMMEDIATE for write transactions."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below decides
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL's durable-enough default
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads
        # and then writes could fail with "database is locked" instead of waiting.
        immediate = getattr(thread, "writing", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# -- the repository ----------------------------------------------------------------------------


class FeedbackRepository:
    """Everything tgplus does with feedback and recorded predictions, over one session."""

    def __init__(self, store: FeedbackStore, session: Session) -> None:
        self.store = store
        self.session = session

    @_store_errors
    def add_feedback(self, item: NewFeedback, *, now: datetime | None = None) -> SavedFeedback:
        """Store `item`, or return the same submission stored less than a minute ago."""
        now = now or utc_now()
        fingerprint = item.fingerprint()
        with self.store.writing(), self.session.begin():
            key = int.from_bytes(bytes.fromhex(fingerprint[:16]), "big", signed=True)
            self.store.serialise(self.session.connection(), key)
            earlier = self.session.scalar(
                select(FeedbackRow.id)
                .where(FeedbackRow.fingerprint == fingerprint)
                .where(FeedbackRow.created_at > now - DUPLICATE_WINDOW)
                .order_by(FeedbackRow.id.desc())
                .limit(1)
            )
            if earlier is not None:
                return SavedFeedback(earlier, created=False)
            row = FeedbackRow(
                created_at=now,
                description=storable(item.description),
                title=storable(item.title),
                suggested=list(item.suggested),
                genres=list(item.genres),
                editor=storable(item.editor),
                note=storable(item.note),
                model_id=item.model_id,
                fingerprint=fingerprint,
                prediction_id=item.prediction_id,
            )
            self.session.add(row)
            self.session.flush()
            return SavedFeedback(row.id, created=True)

    @_store_errors
    def record_predictions(self, served: Sequence[ServedPrediction]) -> list[str]:
        """Store served predictions; their short ids, in order."""
        now = utc_now()
        ids = [secrets.token_urlsafe(PREDICTION_ID_CHARS * 3 // 4) for _ in served]
        with self.store.writing(), self.session.begin():
            self.session.add_all(
                PredictionRow(
                    id=short_id,
                    created_at=now,
                    description=storable(p.description),
                    title=storable(p.title),
                    genres=list(p.genres),
                    model_id=p.model_id,
                )
                for short_id, p in zip(ids, served, strict=True)
            )
        return ids

    @_store_errors
    def prediction(self, prediction_id: str) -> RecordedPrediction | None:
        with self.session.begin():
            row = self.session.get(PredictionRow, prediction_id)
            if row is None:
                return None
            return RecordedPrediction(
                row.id, row.description, row.title, tuple(row.genres), row.model_id
            )

    @_store_errors
    def delete_feedback(self, feedback_id: int) -> bool:
        with self.store.writing(), self.session.begin():
            deleted = self.session.execute(delete(FeedbackRow).where(FeedbackRow.id == feedback_id))
            return bool(getattr(deleted, "rowcount", 0))

    @_store_errors
    def delete_prediction(self, prediction_id: str) -> bool:
        with self.store.writing(), self.session.begin():
            deleted = self.session.execute(
                delete(PredictionRow).where(PredictionRow.id == prediction_id)
            )
            return bool(getattr(deleted, "rowcount", 0))

    @_store_errors
    def purge(self, before: datetime) -> Purged:
        """Delete feedback and recorded predictions stored before `before` (naive UTC)."""
        with self.store.writing(), self.session.begin():
            feedback = self.session.execute(
                delete(FeedbackRow).where(FeedbackRow.created_at < before)
            )
            predictions = self.session.execute(
                delete(PredictionRow).where(PredictionRow.created_at < before)
            )
            return Purged(
                int(getattr(feedback, "rowcount", 0)), int(getattr(predictions, "rowcount", 0))
            )

    @_store_errors
    def feedback(self, *, newest_first: bool = True) -> list[FeedbackRow]:
        """Every feedback row (for export and training), newest first by default."""
        order = FeedbackRow.id.desc() if newest_first else FeedbackRow.id.asc()
        with self.session.begin():
            return list(self.session.scalars(select(FeedbackRow).order_by(order)))

    @_store_errors
    def quality(self, window: int) -> Quality:
        """Quality of the suggestions over the latest `window` feedback rows."""
        with self.session.begin():
            rows = self.session.execute(
                select(FeedbackRow.suggested, FeedbackRow.genres)
                .order_by(FeedbackRow.id.desc())
                .limit(window)
            ).all()
        return measure_quality([(list(s), list(g)) for s, g in rows])

    @_store_errors
    def counts(self) -> dict[str, Any]:
        """How much is stored: feedback, editors, recorded predictions, first and last times."""
        with self.session.begin():
            feedback, editors, first, last, linked = self.session.execute(
                select(
                    func.count(FeedbackRow.id),
                    func.count(func.distinct(FeedbackRow.editor)),
                    func.min(FeedbackRow.created_at),
                    func.max(FeedbackRow.created_at),
                    func.count(FeedbackRow.prediction_id),
                )
            ).one()
            predictions = self.session.scalar(select(func.count(PredictionRow.id)))
        return {
            "feedback": int(feedback),
            "editors": int(editors),
            "feedback_with_prediction": int(linked),
            "first": first.isoformat(timespec="seconds") + "Z" if first else None,
            "last": last.isoformat(timespec="seconds") + "Z" if last else None,
            "predictions": int(predictions or 0),
        }
