"""Build the compact model that ships inside the package (`make bundle`).

The bundled model is the `fast` model trained on the team's shared data,
made smaller to ship: the TF-IDF terms that weigh least are dropped and the
weight matrices are stored as float16 (`FastModel.compacted`). Building it
measures both the full-precision model and the compact one on the same
held-out test movies, and records both in its metadata, so what compaction
costs is always written beside the model. Data files are recorded by their
path under the data directory (never an absolute path of the machine that
built it) with their sha256.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgplus.errors import ModelError
from tgplus.evaluation import loading_of, select_movies, split_settings_of
from tgplus.files import sha256_file
from tgplus.metrics import measure
from tgplus.models import Predictor, save_predictor
from tgplus.models.bundled import BUNDLED_MODEL, DEFAULT_KEEP_TERMS
from tgplus.models.lexical import FastModel
from tgplus.training import train


@dataclass
class BundleResult:
    predictor: Predictor
    path: Path
    full_metrics: dict[str, Any]
    """The full-precision model's metrics on the test movies."""
    compact_metrics: dict[str, Any]
    """The bundled (compact) model's metrics on the same movies."""
    size_bytes: int


def _relative_name(path: Path, data_root: Path | None) -> str:
    """`path` under `data_root` as a POSIX path, or its file name when it is elsewhere."""
    resolved = path.resolve()
    if data_root is not None and resolved.is_relative_to(data_root.resolve()):
        return resolved.relative_to(data_root.resolve()).as_posix()
    return path.name


def build_bundle(
    files: Sequence[str | os.PathLike[str]],
    *,
    data_root: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = BUNDLED_MODEL,
    keep_terms: float = DEFAULT_KEEP_TERMS,
    progress: bool = False,
) -> BundleResult:
    """Train `fast` on `files` (files or directories), compact it, measure both, and save
    the compact one to `out`."""
    paths = [Path(file) for file in files]
    root = Path(data_root) if data_root is not None else None
    trained = train(paths, kind="fast", progress=progress)
    full = trained.predictor
    if not isinstance(full.model, FastModel):  # pragma: no cover - train(kind="fast") made it
        raise ModelError("the bundled model must be a fast model")
    compact_model = full.model.compacted(keep_terms=keep_terms)
    # Thresholds and calibration were fitted on the full model's validation scores;
    # the test figures below measure the compact model with them.
    compact = Predictor(compact_model, full.thresholds, calibration=full.calibration)
    test = select_movies(paths, "test", split_settings_of(full), loading=loading_of(full))
    compact_metrics = measure(compact, test).metrics
    data = []
    for entry in full.metadata["data"]:
        path = Path(entry["path"])
        data.append({**entry, "path": _relative_name(path, root), "sha256": sha256_file(path)})
    terms = sum(block.size for block in full.model.scorers_.features_.blocks_)
    kept = sum(block.size for block in compact_model.scorers_.features_.blocks_)
    compact.metadata = {
        **full.metadata,
        "hyperparameters": compact.model.describe(),
        "data": data,
        "metrics": {"test": compact_metrics, "test_full_precision": trained.metrics},
        "bundle": {
            "built_by": "make bundle",
            "precision": compact_model.precision,
            "keep_terms": keep_terms,
            "terms": {"trained": terms, "kept": kept},
        },
    }
    destination = Path(out)
    save_predictor(compact, destination)
    size = sum(file.stat().st_size for file in destination.iterdir())
    return BundleResult(compact, destination, trained.metrics, compact_metrics, size)
