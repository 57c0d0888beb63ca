"""Shared fixtures: the real data files, and small synthetic ones for edge cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TGPLUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOP10K = SHARED_DATA / "tmdb-top10k" / "top10K-TMDB-movies.csv"
METADATA = SHARED_DATA / "the-movies-dataset" / "movies_metadata.csv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def top10k() -> Path:
    assert TOP10K.is_file(), f"shared data missing: {TOP10K} (set TGPLUS_SHARED_DATA)"
    return TOP10K


@pytest.fixture(scope="session")
def metadata() -> Path:
    assert METADATA.is_file(), f"shared data missing: {METADATA} (set TGPLUS_SHARED_DATA)"
    return METADATA
