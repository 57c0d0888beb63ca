"""Getting the data: a verified URL download and the Kaggle path, against a local server."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from tests.conftest import SHARED_DATA
from tgplus.cli import app
from tgplus.data.fetch import (
    JUSTWATCH_COMMIT,
    JUSTWATCH_SHA256,
    JUSTWATCH_URL,
    KaggleCredentials,
    fetch_justwatch,
    fetch_kaggle,
    fetch_url,
    kaggle_credentials,
)
from tgplus.errors import DataError

runner = CliRunner()


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    expected_auth: ClassVar[str | None] = None
    truncate: ClassVar[bool] = False  # announce more bytes than are sent

    def do_GET(self) -> None:
        if self.expected_auth and self.headers.get("Authorization") != self.expected_auth:
            self.send_error(401)
            return
        body = self.files.get(self.path)
        if self.truncate:
            body = b"only the beginning of the file"
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) * (100 if self.truncate else 1)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server(metadata: Path) -> Iterator[tuple[str, type[_Handler]]]:
    class Handler(_Handler):
        files: ClassVar[dict[str, bytes]] = {"/movies_metadata.csv": metadata.read_bytes()}
        # A mirror of the JustWatch repository's data folder, made of the shared copies.
        files.update(
            {
                f"/justwatch/{path.parent.name}/titles.csv": path.read_bytes()
                for path in (SHARED_DATA / "justwatch").glob("*/titles.csv")
            }
        )

    handler = Handler
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_url_download_is_verified_and_complete(
    server: tuple[str, type[_Handler]], metadata: Path, tmp_path: Path
) -> None:
    base, _ = server
    digest = hashlib.sha256(metadata.read_bytes()).hexdigest()
    fetched = fetch_url(f"{base}/movies_metadata.csv", digest, tmp_path)
    assert fetched.downloaded
    assert fetched.path.read_bytes() == metadata.read_bytes()
    again = fetch_url(f"{base}/movies_metadata.csv", digest, tmp_path)
    assert not again.downloaded


def test_an_existing_file_with_another_sha256_is_refused(
    server: tuple[str, type[_Handler]], metadata: Path, tmp_path: Path
) -> None:
    base, _ = server
    (tmp_path / "movies_metadata.csv").write_text("an older, different file")
    digest = hashlib.sha256(metadata.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="already there but its sha256"):
        fetch_url(f"{base}/movies_metadata.csv", digest, tmp_path)
    fetched = fetch_url(f"{base}/movies_metadata.csv", digest, tmp_path, force=True)
    assert fetched.path.read_bytes() == metadata.read_bytes()


def test_a_download_cut_short_writes_nothing(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    base, handler = server
    handler.truncate = True
    with pytest.raises(DataError, match=r"cut short|download failed"):
        fetch_kaggle(tmp_path, credentials=KaggleCredentials("me", "secret"), api=base)
    assert list(tmp_path.iterdir()) == []


def test_wrong_sha256_writes_nothing(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch_url(f"{base}/movies_metadata.csv", "0" * 64, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_fetch_url(server: tuple[str, type[_Handler]], metadata: Path, tmp_path: Path) -> None:
    base, _ = server
    digest = hashlib.sha256(metadata.read_bytes()).hexdigest()
    url = f"{base}/movies_metadata.csv"
    result = runner.invoke(
        app, ["data", "fetch", "--url", url, "--sha256", digest, "--dest", str(tmp_path)]
    )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "movies_metadata.csv").is_file()
    result = runner.invoke(app, ["data", "fetch", "--url", url, "--dest", str(tmp_path)])
    assert result.exit_code == 2
    assert "pass --sha256" in result.stderr


@pytest.mark.parametrize(
    ("url", "sha", "message"),
    [
        ("ftp://example.org/x.csv", "0" * 64, "only http"),
        ("http://127.0.0.1:9/x.csv", "xyz", "not a sha256"),
        ("http://127.0.0.1:1/movies.csv", "0" * 64, "download failed"),
    ],
)
def test_bad_urls(tmp_path: Path, url: str, sha: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        fetch_url(url, sha, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_kaggle_without_credentials_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "nowhere"))
    result = runner.invoke(app, ["data", "fetch", "--dest", str(tmp_path / "data")])
    assert result.exit_code == 2
    assert "no Kaggle credentials" in result.stderr
    assert "movies_metadata.csv" in result.stderr
    assert str(tmp_path / "data" / "movies_metadata.csv") in result.stderr
    assert result.stderr.count("\n") == 1


def test_kaggle_credentials_from_env_or_file(tmp_path: Path) -> None:
    assert kaggle_credentials({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}) == KaggleCredentials(
        "u", "k"
    )
    (tmp_path / "kaggle.json").write_text('{"username": "f", "key": "s"}')
    assert kaggle_credentials({"KAGGLE_CONFIG_DIR": str(tmp_path)}) == KaggleCredentials("f", "s")
    assert kaggle_credentials({"KAGGLE_CONFIG_DIR": str(tmp_path / "none")}) is None


def test_kaggle_download_unzips_with_basic_auth(
    server: tuple[str, type[_Handler]], metadata: Path, tmp_path: Path
) -> None:
    base, handler = server
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("movies_metadata.csv", metadata.read_bytes())
    handler.files["/datasets/download/rounakbanik/the-movies-dataset/movies_metadata.csv"] = (
        archive.getvalue()
    )
    handler.expected_auth = "Basic " + base64.b64encode(b"me:secret").decode()
    fetched = fetch_kaggle(tmp_path, credentials=KaggleCredentials("me", "secret"), api=base)
    assert fetched.path.read_bytes() == metadata.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movies_metadata.csv"]


def test_kaggle_refusal_leaves_nothing(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, handler = server
    handler.expected_auth = "Basic nobody"
    with pytest.raises(DataError, match="could not download from Kaggle"):
        fetch_kaggle(tmp_path, credentials=KaggleCredentials("me", "wrong"), api=base)
    assert list(tmp_path.iterdir()) == []


# -- JustWatch, with no account ----------------------------------------------------------------


def test_justwatch_catalogues_are_pinned_to_one_commit() -> None:
    assert JUSTWATCH_COMMIT in JUSTWATCH_URL
    assert JUSTWATCH_URL.startswith("https://")
    shared = {path.parent.name for path in (SHARED_DATA / "justwatch").glob("*/titles.csv")}
    assert set(JUSTWATCH_SHA256) == shared


def test_justwatch_fetch_gets_every_catalogue_verified(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    base, _ = server
    fetched = fetch_justwatch(str(tmp_path), base_url=f"{base}/justwatch")
    assert len(fetched) == len(JUSTWATCH_SHA256)
    for file in fetched:
        assert file.downloaded
        service = file.path.parent.name
        assert file.path == tmp_path / "justwatch" / service / "titles.csv"
        shared = SHARED_DATA / "justwatch" / service / "titles.csv"
        assert file.path.read_bytes() == shared.read_bytes()
    again = fetch_justwatch(tmp_path, base_url=f"{base}/justwatch")
    assert not any(file.downloaded for file in again)


def test_a_justwatch_mirror_with_a_changed_file_is_refused(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    base, handler = server
    handler.files["/justwatch/hbo/titles.csv"] = b"id,title\ntm1,Not the pinned file\n"
    with pytest.raises(DataError, match=r"hbo/titles\.csv: sha256 mismatch"):
        fetch_justwatch(tmp_path, base_url=f"{base}/justwatch")
    assert not (tmp_path / "justwatch" / "hbo" / "titles.csv").exists()


def test_cli_fetch_justwatch(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    base, _ = server
    args = ["data", "fetch", "--source", "justwatch", "--dest", str(tmp_path)]
    result = runner.invoke(app, [*args, "--mirror", f"{base}/justwatch"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("downloaded") == len(JUSTWATCH_SHA256)
    assert (tmp_path / "justwatch" / "netflix" / "titles.csv").is_file()
    result = runner.invoke(app, [*args, "--url", f"{base}/x.csv"])
    assert result.exit_code == 2
    assert "do not go with --source justwatch" in result.stderr
