"""Saving and loading models: a directory of arrays plus `metadata.json`, never pickle.

    <model>/metadata.json   kind, genres, thresholds, settings, data, metrics, versions, ...
    <model>/model.npz       the fitted arrays (numpy, loaded with allow_pickle=False)

Format 2 adds `calibration` to metadata.json (plain JSON numbers, see
`tgplus.models.calibration`); format 1 models still load, without calibration:
their scores are raw, `confident` is null and they refuse a recall target.

`metadata.json` records the sha256 of `model.npz`; a truncated or modified
file is refused with a message naming it. Saving writes a new directory and
swaps it in only when complete (`tgplus.files.atomic_directory`).
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tgplus.errors import ModelError
from tgplus.files import atomic_directory, sha256_file
from tgplus.models.base import ModelState
from tgplus.models.calibration import Calibration
from tgplus.models.kinds import model_class
from tgplus.models.predictor import Predictor

FORMAT_VERSION = 2
METADATA_FILE = "metadata.json"
ARRAYS_FILE = "model.npz"

log = logging.getLogger(__name__)


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
        if not self.genres:
            raise ValueError("the model has no genres")
        if len(self.thresholds) != len(self.genres):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.genres)} genres")
        if ARRAYS_FILE not in self.files:
            raise ValueError(f"no checksum for {ARRAYS_FILE}")
        return self


def save_predictor(predictor: Predictor, path: Path) -> Path:
    """Write `predictor` to the directory `path`, replacing a previous model only on success."""
    if path.exists() and not path.is_dir():
        raise ModelError(f"{path}: is a file, not a model directory; choose another --out")
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
        metadata = {**header, **{k: v for k, v in predictor.metadata.items() if k not in header}}
        (partial / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """The parsed metadata.json of the model at `path`, or a ModelError saying why not."""
    if not path.exists():
        hint = f"train one with `tgplus train --out {path}`"
        previous = path.with_name(f"{path.name}.previous")
        if previous.is_dir():
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


def load_predictor(path: Path) -> Predictor:
    """Load the model at `path`, checking every file before trusting it."""
    metadata = read_metadata(path)
    try:
        header = ArtifactHeader.model_validate(metadata)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "metadata"
        raise ModelError(
            f"{path / METADATA_FILE}: invalid {where} ({problem['msg']}); retrain the model"
        ) from None
    if header.format_version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: made by a newer tgplus (format {header.format_version}, this one reads "
            f"{FORMAT_VERSION}); upgrade tgplus"
        )
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
