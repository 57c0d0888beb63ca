"""Which model to use when none is named: `data/model` if there is one, else the bundled one.

tgplus ships a compact `fast` model inside the package (`tgplus/bundled/`,
built by `make bundle`), so `tgplus predict`, `tgplus serve` and
`tgplus.load()` work right after installation, with no data and no training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tgplus.config import DEFAULT_MODEL_PATH

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "bundled"
"""The model directory installed with the package."""
DEFAULT_KEEP_TERMS = 0.6
"""Share of TF-IDF terms the bundled model keeps (`make bundle` reports what it costs)."""


@dataclass(frozen=True)
class ModelLocation:
    path: Path
    bundled: bool
    """True when nothing was named and no `data/model` exists: the packaged model."""

    def describe(self) -> str:
        """One line for logs and the CLI saying which model this is and why."""
        if self.bundled:
            return (
                f"using the bundled model ({self.path}): no model path given and no "
                f"{DEFAULT_MODEL_PATH}; train your own with `tgplus train`"
            )
        return f"using the model at {self.path}"


def locate_model(path: str | os.PathLike[str] | None = None) -> ModelLocation:
    """`path` when given; else `data/model` when it exists; else the bundled model."""
    if path is not None:
        return ModelLocation(Path(path), bundled=False)
    if DEFAULT_MODEL_PATH.exists():
        return ModelLocation(DEFAULT_MODEL_PATH, bundled=False)
    return ModelLocation(BUNDLED_MODEL, bundled=True)
