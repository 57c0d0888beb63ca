"""The feedback store's tables, in SQLAlchemy 2's typed declarative style.

What the model suggested and what the editor decided sit side by side in one
feedback row and are never overwritten by each other (as Label Studio keeps
predictions beside annotations). A served prediction, when recording is on,
is its own row under a short id that feedback can point at.

Times are naive UTC: SQLite has no time zones, so both engines store the same.
The schema is created and changed only by the Alembic migrations beside this
file (`tgplus db upgrade`), never by `create_all`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EDITOR_MAX_CHARS = 200
NOTE_MAX_CHARS = 2000
PREDICTION_ID_CHARS = 8
FEEDBACK_ID_MAX = 2**31 - 1  # Integer: 32 bits in PostgreSQL, so on every database


def utc_now() -> datetime:
    """The current time as stored: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class FeedbackRow(Base):
    """One editor's answer: the genres they say are right, beside what was suggested."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    description: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    suggested: Mapped[list[str]] = mapped_column(JSON)
    """The model's genres, best first (the first is its top genre)."""
    genres: Mapped[list[str]] = mapped_column(JSON)
    """The genres the editor says are right."""
    editor: Mapped[str] = mapped_column(String(EDITOR_MAX_CHARS), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    model_id: Mapped[str] = mapped_column(String(64), default="")
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    """sha256 of text, genres and editor: spots the same submission sent twice."""
    prediction_id: Mapped[str | None] = mapped_column(
        String(PREDICTION_ID_CHARS), index=True, default=None
    )


class PredictionRow(Base):
    """A prediction the server served, kept only when recording is on."""

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(PREDICTION_ID_CHARS), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    description: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    genres: Mapped[list[str]] = mapped_column(JSON)
    """The genres served, best first."""
    model_id: Mapped[str] = mapped_column(String(64), default="")
