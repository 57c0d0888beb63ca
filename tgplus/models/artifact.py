"""Saving and loading models: a directory of arrays plus `metadata.json`, never pickle.

    <model>/metadata.json   kind, genres, thresholds, settings, data, metrics, versions, ...
    <model>/model.npz       the fitted arrays (numpy, loaded with allow_pickle=False)

`metadata.json` records the sha256 of `model.npz` and, in `metadata_sha256`,
the sha256 of its own other fields (as canonical JSON: sorted keys, no
spaces); a truncated or modified file is refused with a message naming it.
The genres and thresholds are validated too. This detects damage and
careless edits, not a determined attacker who recomputes the sums.

Format 3 adds `calibration` to metadata.json (plain JSON numbers, see
`tgplus.models.calibration`). Format 2 models still load, without calibration:
their scores are raw, `confident` is null and they refuse a recall target.

Saving writes a new directory and swaps it in only when complete
(`tgplus.files.atomic_directory`), and never replaces a directory that is
not a tgplus model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tgplus.errors import ModelError
from tgplus.files import atomic_directory, interrupted_replacement, sha256_file
from tgplus.models.base import ModelState
from tgplus.models.calibration import Calibration
from tgplus.models.kinds import model_class
from tgplus.models.predictor import Predictor

# 2: metadata.json carries metadata_sha256. Format 1 models cannot be checked: retrain them.
# 3: metadata.json carries the calibration; format 2 models load without it.
FORMAT_VERSION = 3
OLDEST_FORMAT = 2
METADATA_FILE = "metadata.json"
ARRAYS_FILE = "model.npz"
StrPath = str | os.PathLike[str]
"""A path as users pass it: `"data/model"` as well as `Path("data/model")`."""
ARTIFACT_FILES = frozenset({METADATA_FILE, ARRAYS_FILE})
CHECKSUM_FIELD = "metadata_sha256"

log = logging.getLogger(__name__)


def metadata_checksum(metadata: dict[str, Any]) -> str:
    """The sha256 of every field but the checksum itself, as canonical JSON."""
    fields = {k: v for k, v in metadata.items() if k != CHECKSUM_FIELD}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ArtifactHeader(BaseModel):
    """The part of metadata.json that loading relies on; the rest is informational."""

    model_config = ConfigDict(extra="allow")

    format_version: int
    kind: str
    genres: list[str]
    thresholds: list[float]
    settings: dict[str, Any]
    files: dict[str, str]
    calibration: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ArtifactHeader:
        if len(self.genres) < 2:
            raise ValueError(f"{len(self.genres)} genres; a model needs at least two")
        blank = [i for i, genre in enumerate(self.genres) if not genre.strip()]
        if blank:
            raise ValueError(f"genre {blank[0]} is blank")
        repeated = sorted({g for g in self.genres if self.genres.count(g) > 1})
        if repeated:
            raise ValueError(f"genre {repeated[0]!r} appears more than once")
        if len(self.thresholds) != len(self.genres):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.genres)} genres")
        for genre, threshold in zip(self.genres, self.thresholds, strict=True):
            if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
                raise ValueError(f"the threshold of {genre!r} is {threshold}, not within 0..1")
        if ARRAYS_FILE not in self.files:
            raise ValueError(f"no checksum for {ARRAYS_FILE}")
        return self


def check_destination(path: StrPath) -> None:
    """Refuse to save over anything but a tgplus model: a file, or a directory of other things.

    Called before training starts, so a mistaken --out costs nothing, and again
    when saving.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelError(f"{path}: is a file, not a model directory; choose another --out")
    if not path.is_dir():
        _check_writable_parent(path)
        return
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return
    others = [name for name in entries if name not in ARTIFACT_FILES]
    if not others and _looks_like_a_model(path):
        return
    named = ", ".join(others[:3] or entries[:3]) + (", ..." if len(others or entries) > 3 else "")
    raise ModelError(
        f"{path}: not a tgplus model directory (it holds {named}); saving there would delete "
        "its contents; choose another --out, or an empty or new directory"
    )


def _check_writable_parent(path: Path) -> None:
    """Refuse a new model directory whose parent cannot be made or written to."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ModelError(f"{parent}: is a file, not a directory; choose another --out")
    try:  # what saving does first: a temporary directory beside the model
        Path(tempfile.mkdtemp(prefix=".tgplus-check-", dir=parent)).rmdir()
    except OSError as error:
        raise ModelError(
            f"{path}: cannot write in {parent} ({error.strerror}); choose another --out"
        ) from None


def _looks_like_a_model(path: Path) -> bool:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(metadata, dict) and "format_version" in metadata and "kind" in metadata


def save_predictor(predictor: Predictor, path: StrPath) -> Path:
    """Write `predictor` to the directory `path`, replacing a previous model only on success."""
    path = Path(path)
    check_destination(path)
    state = predictor.model.get_state()
    with atomic_directory(path) as partial:
        with (partial / ARRAYS_FILE).open("wb") as stream:
            arrays: dict[str, Any] = state.arrays
            np.savez_compressed(stream, **arrays)
        header = {
            "format_version": FORMAT_VERSION,
            "kind": predictor.kind,
            "genres": list(predictor.genres),
            "thresholds": [round(float(t), 6) for t in predictor.thresholds],
            "settings": state.settings,
            "files": {ARRAYS_FILE: sha256_file(partial / ARRAYS_FILE)},
            "calibration": (
                predictor.calibration.to_json() if predictor.calibration is not None else None
            ),
        }
        extra = {
            k: v for k, v in predictor.metadata.items() if k not in header and k != CHECKSUM_FIELD
        }
        # Round-trip first: the checksum is of what a reader will parse (tuples become lists).
        metadata = json.loads(json.dumps({**header, **extra}))
        metadata[CHECKSUM_FIELD] = metadata_checksum(metadata)
        (partial / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return path


def read_metadata(path: StrPath) -> dict[str, Any]:
    """The parsed metadata.json of the model at `path`, or a ModelError saying why not."""
    path = Path(path)
    if not path.exists():
        hint = f"train one with `tgplus train --out {path}`"
        previous = interrupted_replacement(path)
        if previous is not None:
            hint = f"a save was interrupted; the previous model is at {previous}"
        raise ModelError(f"{path}: no model here; {hint}")
    if not path.is_dir():
        raise ModelError(
            f"{path}: not a model directory (expected {METADATA_FILE} and {ARRAYS_FILE})"
        )
    metadata_path = path / METADATA_FILE
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{metadata_path}: missing; this is not a tgplus model directory"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{metadata_path}: unreadable ({error}); retrain the model") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{metadata_path}: not a JSON object; retrain the model")
    return metadata


def load_predictor(path: StrPath) -> Predictor:
    """Load the model at `path` (a `str` or a `Path`), checking every file before trusting it."""
    path = Path(path)
    metadata = read_metadata(path)
    version = metadata.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: made by a newer tgplus (format {version}, this one reads "
            f"{FORMAT_VERSION}); upgrade tgplus"
        )
    if isinstance(version, int) and version < OLDEST_FORMAT:
        raise ModelError(
            f"{path}: made by an older tgplus (format {version}) whose metadata has no "
            "checksum; retrain the model"
        )
    if metadata.get(CHECKSUM_FIELD) != metadata_checksum(metadata):
        raise ModelError(
            f"{path / METADATA_FILE}: checksum mismatch, the file was modified or damaged; "
            "retrain the model"
        )
    try:
        header = ArtifactHeader.model_validate(metadata)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "metadata"
        raise ModelError(
            f"{path / METADATA_FILE}: invalid {where} ({problem['msg']}); retrain the model"
        ) from None
    arrays_path = path / ARRAYS_FILE
    if not arrays_path.is_file():
        raise ModelError(f"{arrays_path}: missing; the model is incomplete, retrain it")
    if sha256_file(arrays_path) != header.files[ARRAYS_FILE]:
        raise ModelError(
            f"{arrays_path}: checksum mismatch, the file is truncated or was modified; retrain "
            "the model"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ModelError(f"{arrays_path}: unreadable ({error}); retrain the model") from None
    cls = model_class(header.kind)
    try:
        model = cls.from_state(ModelState(arrays, header.settings), header.genres)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f"{path / METADATA_FILE}: invalid settings for a {header.kind} model "
            f"({type(error).__name__}: {error}); retrain the model"
        ) from None
    calibration = None
    if header.calibration is not None:
        try:
            calibration = Calibration.from_json(header.calibration, len(header.genres))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(
                f"{path / METADATA_FILE}: invalid calibration ({type(error).__name__}: {error}); "
                "retrain the model"
            ) from None
    elif header.format_version < FORMAT_VERSION:
        log.warning(
            "%s: saved by an older tgplus (format %d) without calibration: scores are raw, "
            "`confident` is null and recall targets are refused; retrain to get them",
            path,
            header.format_version,
        )
    return Predictor(model, header.thresholds, metadata, calibration)
