"""Feedback out of the database: the generic CSV / JSON Lines format every tool reads.

The columns are the ones `tgplus.data` reads from a generic file (`title`,
`overview`, `genres` = the editor's genres, `language` left empty), followed
by what else the row holds (`suggested`, `editor`, `note`, `created_at`,
`feedback_id`, `prediction_id`, `model_id`), which readers of the generic
format ignore. Rows come newest first, so where several editors corrected
the same film, loading the file keeps the latest correction (the data layer
keeps a film's first occurrence).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tgplus.errors import InputError
from tgplus.feedback.models import FeedbackRow
from tgplus.files import atomic_file

COLUMNS = (
    "title",
    "overview",
    "genres",
    "language",
    "suggested",
    "editor",
    "note",
    "created_at",
    "feedback_id",
    "prediction_id",
    "model_id",
)


def export_record(row: FeedbackRow) -> dict[str, Any]:
    return {
        "title": row.title,
        "overview": row.description,
        "genres": list(row.genres),
        "language": "",
        "suggested": list(row.suggested),
        "editor": row.editor,
        "note": row.note,
        "created_at": row.created_at.isoformat(timespec="seconds") + "Z",
        "feedback_id": row.id,
        "prediction_id": row.prediction_id or "",
        "model_id": row.model_id,
    }


def export_format(path: Path, chosen: str | None = None) -> str:
    """`csv` or `jsonl`: as chosen, else from the file's extension."""
    name = chosen or path.suffix.lower().lstrip(".")
    if name == "json":
        name = "jsonl"
    if name not in ("csv", "jsonl"):
        raise InputError(
            f"{path}: cannot tell the format; name it .csv or .jsonl, or pass --format"
        )
    return name


def write_feedback(rows: Sequence[FeedbackRow], out: Path, file_format: str) -> int:
    """Write `rows` to `out` atomically; the number written."""
    with atomic_file(out) as partial, partial.open("w", encoding="utf-8", newline="") as stream:
        if file_format == "csv":
            writer = csv.DictWriter(stream, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                record = export_record(row)
                record["genres"] = "|".join(record["genres"])
                record["suggested"] = "|".join(record["suggested"])
                writer.writerow(record)
        else:
            for row in rows:
                stream.write(json.dumps(export_record(row), ensure_ascii=False) + "\n")
    return len(rows)


def parse_before(value: str, *, now: datetime | None = None) -> datetime:
    """`2026-01-31`, `2026-01-31T12:00:00Z` (UTC unless an offset is given) or `30d` ago.

    The answer is naive UTC, as the store keeps times.
    """
    text = value.strip()
    now = now or datetime.now(timezone.utc)
    if text[:-1].isdigit() and text[-1:].lower() == "d":
        moment = now - timedelta(days=int(text[:-1]))
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"--before {value!r} is not a date; use 2026-01-31, 2026-01-31T12:00:00Z or 30d"
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
