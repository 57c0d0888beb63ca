"""Helpers shared by the benchmark scripts: the data files and a few statistics."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TMDB_FILES = [
    SHARED / "tmdb-top10k" / "top10K-TMDB-movies.csv",
    SHARED / "the-movies-dataset" / "movies_metadata.csv",
]
DEFAULT_DATA = [SHARED]  # every shared file: the TMDB files and the JustWatch catalogues


def data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        type=Path,
        help="Training file or directory (repeatable); default: every shared file.",
    )


def data_files(arguments: argparse.Namespace) -> list[Path]:
    files: list[Path] = arguments.data or DEFAULT_DATA
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SystemExit(f"error: data file(s) not found: {', '.join(missing)}; pass --data FILE")
    return files


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds), q) * 1000.0)


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def table(rows: list[dict[str, object]], columns: list[tuple[str, str]]) -> str:
    """A Markdown table: `columns` are (key, heading)."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(str(row.get(k, "")) for k, _ in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])
