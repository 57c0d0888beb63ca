"""The service's state: the settings, the metrics and the loaded model, one per app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from starlette.requests import Request

from tgplus.api.observability import Metrics, log
from tgplus.config import Settings
from tgplus.errors import ModelError, TgplusError
from tgplus.models import Predictor, load_predictor

T = TypeVar("T")

# A single fast-model prediction costs ~0.1 ms: less than handing it to a
# worker thread. Anything heavier (batches, embedding models) runs in threads.
_INLINE_MAX_TEXTS = 4


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    predictor: Predictor | None = None
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None
    paths_without_get: frozenset[str] = frozenset()

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ModelError(f"model not loaded: {self.load_error or 'still starting'}")
        return self.predictor

    async def run(self, predictor: Predictor, texts: int, work: Callable[[], T]) -> T:
        """Run `work` inline when it is tiny, else in a worker thread (the loop stays free)."""
        if texts <= _INLINE_MAX_TEXTS and not predictor.model.needs_embeddings:
            return work()
        return await anyio.to_thread.run_sync(work, limiter=self.limiter)


def service(request: Request) -> ServiceState:
    """The state of the app serving `request` (an attribute lookup: cheaper than a dependency)."""
    state: ServiceState = request.app.state.service
    return state


def load_model(state: ServiceState) -> None:
    """Load and warm up the configured model, or record (and log once) why it cannot be."""
    path = state.settings.model_path
    try:
        predictor = load_predictor(path)
        predictor.predict_one("warm up the model before the first request")
    except TgplusError as error:
        # Responses name the model directory, never where the server keeps it; the log does.
        state.load_error = str(error).replace(str(path), path.name)
        log.error({"event": "model_not_loaded", "path": str(path), "error": str(error)})
        state.metrics.model_loaded.set(0)
        return
    state.predictor = predictor
    state.metrics.model_loaded.set(1)
    log.info(
        {
            "event": "model_loaded",
            "path": str(path),
            "kind": predictor.kind,
            "genres": len(predictor.genres),
        }
    )
