"""Download the movie data for a real user: Kaggle's dataset, or any verified URL.

Downloads stream into a temporary file beside the destination and are renamed
into place only once complete (and, for --url, once the sha256 matches), so an
interrupted or wrong download never leaves a file that looks usable.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tgplus.errors import DataError
from tgplus.files import atomic_file, sha256_file

KAGGLE_DATASET = "rounakbanik/the-movies-dataset"
KAGGLE_FILE = "movies_metadata.csv"
KAGGLE_PAGE = f"https://www.kaggle.com/datasets/{KAGGLE_DATASET}"
KAGGLE_API = "https://www.kaggle.com/api/v1"
TIMEOUT_SECONDS = 15.0
_CHUNK = 1 << 16

# What a failed download raises: refused, unreachable, timed out, or a malformed URL.
_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    OSError,
    TimeoutError,
    ValueError,
)

Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None) while downloading."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    downloaded: bool  # False when the file was already there


@dataclass(frozen=True)
class KaggleCredentials:
    username: str
    key: str


def kaggle_credentials(environ: dict[str, str] | None = None) -> KaggleCredentials | None:
    """Credentials the way the Kaggle CLI finds them: env vars, then kaggle.json."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return KaggleCredentials(environ["KAGGLE_USERNAME"], environ["KAGGLE_KEY"])
    config_dir = Path(environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    config = config_dir / "kaggle.json"
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(values, dict) and values.get("username") and values.get("key"):
        return KaggleCredentials(str(values["username"]), str(values["key"]))
    return None


def _manual_hint(destination: Path) -> str:
    return f"download {KAGGLE_FILE} from {KAGGLE_PAGE} and put it at {destination}"


def _stream_to(request: urllib.request.Request, partial: Path, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        with partial.open("wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    if total is not None and done != total:
        raise DataError(
            f"{request.full_url}: download cut short ({done} of {total} bytes); try again"
        )
    return digest.hexdigest()


def fetch_url(
    url: str,
    sha256: str,
    destination_dir: Path,
    *,
    name: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Fetched:
    """Download `url` into `destination_dir`, refusing it unless its sha256 matches."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise DataError(f"{url}: only http:// and https:// URLs can be fetched")
    expected = sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise DataError(
            f"--sha256 {sha256!r} is not a sha256 (64 hex digits); `sha256sum` prints one"
        )
    filename = name or Path(urllib.parse.unquote(parsed.path)).name
    if not filename:
        raise DataError(f"{url}: the URL names no file; pass --name for the file to write")
    destination = destination_dir / filename
    if destination.exists() and not force:
        present = sha256_file(destination)
        if present != expected:
            raise DataError(
                f"{destination}: already there but its sha256 is {present}, not {expected}; "
                "pass --force to download it again"
            )
        return Fetched(destination, present, downloaded=False)
    with atomic_file(destination) as partial:
        try:
            actual = _stream_to(urllib.request.Request(url), partial, progress)
        except _NETWORK_ERRORS as error:
            reason = getattr(error, "reason", error)
            raise DataError(
                f"{url}: download failed ({reason}); check the URL and network"
            ) from None
        if actual != expected:
            raise DataError(
                f"{url}: sha256 mismatch (expected {expected}, got {actual}); nothing was written"
            )
    return Fetched(destination, actual, downloaded=True)


def fetch_kaggle(
    destination_dir: Path,
    *,
    force: bool = False,
    credentials: KaggleCredentials | None = None,
    api: str = KAGGLE_API,
    progress: Progress | None = None,
) -> Fetched:
    """Download The Movies Dataset's movies_metadata.csv with the Kaggle API."""
    destination = destination_dir / KAGGLE_FILE
    if destination.exists() and not force:
        return Fetched(destination, sha256_file(destination), downloaded=False)
    credentials = credentials or kaggle_credentials()
    if credentials is None:
        raise DataError(
            "no Kaggle credentials (set KAGGLE_USERNAME and KAGGLE_KEY, or create "
            f"~/.kaggle/kaggle.json); or {_manual_hint(destination)}"
        )
    url = f"{api}/datasets/download/{KAGGLE_DATASET}/{KAGGLE_FILE}"
    token = base64.b64encode(f"{credentials.username}:{credentials.key}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with atomic_file(destination) as partial:
        try:
            _stream_to(request, partial, progress)
        except _NETWORK_ERRORS as error:
            reason = getattr(error, "reason", error)
            raise DataError(
                f"could not download from Kaggle ({reason}); {_manual_hint(destination)}"
            ) from None
        if zipfile.is_zipfile(partial):  # Kaggle zips single files larger than a few MB
            try:
                _unzip_member(partial, KAGGLE_FILE, destination)
            except (zipfile.BadZipFile, OSError) as error:
                raise DataError(
                    f"the Kaggle download is a broken zip ({error}); {_manual_hint(destination)}"
                ) from None
    return Fetched(destination, sha256_file(destination), downloaded=True)


def _unzip_member(archive: Path, member: str, destination: Path) -> None:
    """Replace `archive` with the content of its `member`, in place."""
    extracted = archive.with_suffix(".extracted")
    try:
        with zipfile.ZipFile(archive) as bundle:
            if member not in bundle.namelist():
                raise DataError(
                    f"the Kaggle download holds no {member}; {_manual_hint(destination)}"
                )
            with bundle.open(member) as source, extracted.open("wb") as out:
                shutil.copyfileobj(source, out)
        extracted.replace(archive)
    finally:
        extracted.unlink(missing_ok=True)
