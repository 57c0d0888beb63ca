"""tgplus: tag movies with genres from their description."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tgplus.scoring import score_frame

try:
    __version__ = version("tgplus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "score_frame"]


def __getattr__(name: str) -> Any:
    # `tgplus.score_frame` without loading numpy and the models for every `import tgplus`.
    if name == "score_frame":
        from tgplus.scoring import score_frame

        return score_frame
    raise AttributeError(f"module 'tgplus' has no attribute {name!r}")
