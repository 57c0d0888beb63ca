"""The service's state: the settings, the metrics, the loaded model and the feedback store."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

from tgplus.api.observability import EditorMetrics, Metrics, log
from tgplus.config import Settings
from tgplus.errors import ModelError, StoreError, TgplusError
from tgplus.feedback import FeedbackStore
from tgplus.files import atomic_file
from tgplus.models import Predictor, load_predictor
from tgplus.models.artifact import CHECKSUM_FIELD
from tgplus.models.bundled import ModelLocation, locate_model

T = TypeVar("T")

# A single fast-model prediction costs ~0.1 ms: less than handing it to a
# worker thread. Anything heavier (batches, embedding models) runs in threads.
_INLINE_MAX_TEXTS = 4


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    predictor: Predictor | None = None
    location: ModelLocation | None = None
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
    reload_mark: str | None = None
    """The last reload announcement this worker acted on (see `follow_reloads`)."""

    def __post_init__(self) -> None:
        self.editor_metrics = EditorMetrics(self.metrics.registry)

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ModelError(f"model not loaded: {self.load_error or 'still starting'}")
        return self.predictor

    async def reload(self) -> str | None:
        """Load the model at the configured path and swap it in; the reason if it failed.

        With no model path configured this is data/model when it exists, else the
        bundled model; the one log line says which. The new model is loaded and
        checked in a worker thread while the old one keeps serving; the swap
        happens on the event loop, between requests.
        """
        if self.reloading is None:
            self.reloading = anyio.Lock()
        async with self.reloading:
            # Read before loading: an announcement that arrives while this loads (another
            # worker reloaded while this one was starting) must still be acted on.
            path = os.environ.get(RELOAD_FILE_VARIABLE)
            mark = None if path is None else _reload_mark(path)
            location = locate_model(self.settings.model_path)
            loaded = await anyio.to_thread.run_sync(load_checked, location)
            if isinstance(loaded, str):
                self.editor_metrics.loads.labels("failed").inc()
                if self.predictor is None:
                    self.load_error = loaded
                    self.metrics.model_loaded.set(0)
                return loaded
            self.predictor, self.model_id, self.load_error = loaded, model_id_of(loaded), None
            self.location = location
            self.loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.metrics.model_loaded.set(1)
            self.editor_metrics.loads.labels("ok").inc()
            if mark is not None:
                self.reload_mark = mark
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


def load_checked(location: ModelLocation) -> Predictor | str:
    """The model at `location`, loaded and warmed up; or why it cannot serve (logged once)."""
    path = location.path
    try:
        predictor = load_predictor(path)
        predictor.predict_one("warm up the model before the first request")
    except TgplusError as error:
        log.error({"event": "model_not_loaded", "path": str(path), "error": str(error)})
        # Responses name the model directory, never where the server keeps it; the log does.
        return str(error).replace(str(path), path.name)
    event: dict[str, Any] = {
        "event": "model_loaded",
        "path": str(path),
        "id": model_id_of(predictor),
        "kind": predictor.kind,
        "genres": len(predictor.genres),
        "bundled": location.bundled,
    }
    if location.bundled:
        event["message"] = location.describe()
    log.info(event)
    return predictor


RELOAD_FILE_VARIABLE = "TGPLUS_RELOAD_FILE"
"""Set by `tgplus serve --workers N` (N > 1) for its workers: a file that a worker which
reloaded the model over HTTP rewrites, and that the other workers watch (`follow_reloads`)."""
RELOAD_POLL_SECONDS = 0.5


def _reload_mark(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None  # removed: the server is stopping


def announce_reload(state: ServiceState) -> bool:
    """Tell the other workers of `tgplus serve --workers N` to reload (they each load and
    check the model themselves); False when this process is the only one."""
    path = os.environ.get(RELOAD_FILE_VARIABLE)
    if path is None:
        return False
    mark = f"{state.model_id} {time.time_ns()} {os.getpid()}"
    with atomic_file(Path(path)) as partial:  # whole or not at all, for the readers
        partial.write_text(mark, encoding="utf-8")
    state.reload_mark = mark  # this worker has the model already
    return True


@asynccontextmanager
async def follow_reloads(state: ServiceState) -> AsyncIterator[None]:
    """In a worker of `tgplus serve --workers N`, reload the model (checked, in place, as
    `POST /admin/reload` does) within RELOAD_POLL_SECONDS of another worker's announcement."""
    path = os.environ.get(RELOAD_FILE_VARIABLE)
    if path is None:
        yield
        return

    async def watch() -> None:
        if state.reload_mark is None:  # else: what the file said before the model was loaded
            state.reload_mark = _reload_mark(path)
        while True:
            await anyio.sleep(RELOAD_POLL_SECONDS)
            mark = _reload_mark(path)
            if mark is not None and mark != state.reload_mark:
                state.reload_mark = mark
                error = await state.reload()
                if error is not None:
                    log.warning(
                        {"event": "reload_failed", "error": error, "serving": state.model_id}
                    )

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            yield
        finally:
            group.cancel_scope.cancel()


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
