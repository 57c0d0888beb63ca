"""The service's state: the settings, the metrics, the loaded model and the feedback store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import anyio
from starlette.requests import Request

from tgplus.api.observability import EditorMetrics, Metrics, log
from tgplus.config import Settings
from tgplus.errors import ModelError, StoreError, TgplusError
from tgplus.feedback import FeedbackStore
from tgplus.models import Predictor, load_predictor
from tgplus.models.artifact import CHECKSUM_FIELD

T = TypeVar("T")

# A single fast-model prediction costs ~0.1 ms: less than handing it to a
# worker thread. Anything heavier (batches, embedding models) runs in threads.
_INLINE_MAX_TEXTS = 4


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    predictor: Predictor | None = None
    model_id: str | None = None
    loaded_at: str | None = None
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None
    paths_without_get: frozenset[str] = frozenset()
    # The feedback store: opened at startup when a token is set or predictions are recorded.
    store: FeedbackStore | None = None
    store_ready: bool = False
    store_error: str | None = None
    recording_paused_until: float = 0.0
    editor_metrics: EditorMetrics = field(init=False)
    reloading: anyio.Lock | None = None

    def __post_init__(self) -> None:
        self.editor_metrics = EditorMetrics(self.metrics.registry)

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ModelError(f"model not loaded: {self.load_error or 'still starting'}")
        return self.predictor

    async def reload(self) -> str | None:
        """Load the model at the configured path and swap it in; the reason if it failed.

        The new model is loaded and checked in a worker thread while the old one
        keeps serving; the swap happens on the event loop, between requests.
        """
        if self.reloading is None:
            self.reloading = anyio.Lock()
        async with self.reloading:
            loaded = await anyio.to_thread.run_sync(load_checked, self.settings.model_path)
            if isinstance(loaded, str):
                self.editor_metrics.loads.labels("failed").inc()
                if self.predictor is None:
                    self.load_error = loaded
                    self.metrics.model_loaded.set(0)
                return loaded
            self.predictor, self.model_id, self.load_error = loaded, model_id_of(loaded), None
            self.loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.metrics.model_loaded.set(1)
            self.editor_metrics.loads.labels("ok").inc()
            return None

    async def open_store(self) -> None:
        """Open and migrate the feedback database, if anything here needs it."""
        settings = self.settings
        if settings.api_token is None and not settings.record_predictions:
            return
        try:
            self.store = FeedbackStore(settings.database_url)
            await anyio.to_thread.run_sync(self.store.upgrade)
            self.store_ready = True
        except StoreError as error:
            self.store_error = str(error)
            log.error({"event": "feedback_store_unavailable", "error": str(error)})

    async def ready_store(self) -> FeedbackStore:
        """The store, migrated; tries again if the database was down at startup."""
        if self.store is None:
            raise StoreError(self.store_error or "no feedback database configured")
        if not self.store_ready:
            await anyio.to_thread.run_sync(self.store.upgrade)
            self.store_ready = True
        return self.store

    async def run(self, predictor: Predictor, texts: int, work: Callable[[], T]) -> T:
        """Run `work` inline when it is tiny, else in a worker thread (the loop stays free)."""
        if texts <= _INLINE_MAX_TEXTS and not predictor.model.needs_embeddings:
            return work()
        return await anyio.to_thread.run_sync(work, limiter=self.limiter)


def service(request: Request) -> ServiceState:
    """The state of the app serving `request` (an attribute lookup: cheaper than a dependency)."""
    state: ServiceState = request.app.state.service
    return state


def model_id_of(predictor: Predictor) -> str:
    """The model's id: the checksum its metadata.json carries."""
    return str(predictor.metadata.get(CHECKSUM_FIELD, ""))


def load_checked(path: Path) -> Predictor | str:
    """The model at `path`, loaded and warmed up; or why it cannot serve (logged once)."""
    try:
        predictor = load_predictor(path)
        predictor.predict_one("warm up the model before the first request")
    except TgplusError as error:
        log.error({"event": "model_not_loaded", "path": str(path), "error": str(error)})
        # Responses name the model directory, never where the server keeps it; the log does.
        return str(error).replace(str(path), path.name)
    log.info(
        {
            "event": "model_loaded",
            "path": str(path),
            "id": model_id_of(predictor),
            "kind": predictor.kind,
            "genres": len(predictor.genres),
        }
    )
    return predictor


@contextmanager
def reload_on_sighup(state: ServiceState) -> Iterator[None]:
    """`kill -HUP <pid>` reloads the model, when this process runs its loop in the main thread."""
    import asyncio
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        yield  # a test client or an embedding application owns the signals
        return
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[str | None]] = set()

    def reload() -> None:
        task = loop.create_task(state.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
