"""Shared fixtures: the real data files, and small synthetic ones for edge cases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures import free_port

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TGPLUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOP10K = SHARED_DATA / "tmdb-top10k" / "top10K-TMDB-movies.csv"
METADATA = SHARED_DATA / "the-movies-dataset" / "movies_metadata.csv"
JUSTWATCH = SHARED_DATA / "justwatch"

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


@pytest.fixture(scope="session")
def justwatch() -> Path:
    """The directory of the JustWatch catalogues (one titles.csv per service)."""
    assert (JUSTWATCH / "netflix" / "titles.csv").is_file(), f"shared data missing: {JUSTWATCH}"
    return JUSTWATCH


@pytest.fixture(scope="session")
def netflix(justwatch: Path) -> Path:
    return justwatch / "netflix" / "titles.csv"


@pytest.fixture(scope="session", autouse=True)
def _embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or write the user's embedding cache."""
    os.environ["TGPLUS_CACHE_DIR"] = str(tmp_path_factory.mktemp("embedding-cache"))


@pytest.fixture(scope="session")
def fast_model(tmp_path_factory: pytest.TempPathFactory, top10k: Path, metadata: Path) -> Path:
    """The default model, trained once per session on both shared files (about 10 s)."""
    from tgplus.training import train

    path = tmp_path_factory.mktemp("models") / "fast"
    train([top10k, metadata], kind="fast", out=path)
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory, top10k: Path) -> Path:
    """The first 400 English movies of the top-10k file, for tests that train repeatedly."""
    from tgplus.data import load_movies

    movies = load_movies([top10k]).movies[:400]
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": m.id,
                    "title": m.title,
                    "overview": m.overview,
                    "genres": list(m.genres),
                    "language": m.language,
                }
            )
            + "\n"
            for m in movies
        ),
        encoding="utf-8",
    )
    return path


# -- the feedback databases: SQLite always, PostgreSQL when a server is given -------------------

POSTGRES_URL = os.environ.get("TGPLUS_TEST_POSTGRES_URL", "")


def _postgres_schema_url(request: pytest.FixtureRequest) -> str:
    """A fresh schema on the test server, dropped afterwards: each test starts empty."""
    if not POSTGRES_URL:
        message = "no PostgreSQL for the tests: set TGPLUS_TEST_POSTGRES_URL (.ci/run does)"
        if os.environ.get("TGPLUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    import urllib.parse
    import uuid

    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")

    request.addfinalizer(drop)
    joiner = "&" if "?" in POSTGRES_URL else "?"
    return POSTGRES_URL + joiner + "options=" + urllib.parse.quote(f"-csearch_path={schema}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty feedback database of each kind; the same tests run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    return _postgres_schema_url(request)


@pytest.fixture
def postgres_down_url() -> str:
    """A PostgreSQL URL, with a password, where no server answers."""
    return f"postgresql://tgplus:hunter2@127.0.0.1:{free_port()}/tgplus"
