"""Editors in the loop over HTTP: feedback, deletion and model reload.

Reading predictions stays open. Writing feedback, deleting stored text and
reloading the model need `Authorization: Bearer <TGPLUS_API_TOKEN>`; with no
token configured those endpoints answer 404, so they are never open by
accident. The database work runs in worker threads, one session per request;
a database that is down or read-only makes these endpoints answer 503 while
predictions keep working.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tgplus.api.errors import error_response
from tgplus.api.observability import log
from tgplus.api.schemas import Deleted, ErrorOut, FeedbackIn, FeedbackOut, ReloadOut
from tgplus.api.state import ServiceState, announce_reload, service
from tgplus.errors import InputError, StoreError
from tgplus.feedback import FeedbackRepository, NewFeedback, ServedPrediction
from tgplus.feedback.models import FEEDBACK_ID_MAX, PREDICTION_ID_CHARS
from tgplus.models import Prediction, check_description
from tgplus.models.predictor import check_title

T = TypeVar("T")
RECORDING_PAUSE_SECONDS = 10.0
# Module level: FastAPI resolves the (string) annotations that name it from module globals.
BEARER = HTTPBearer(auto_error=False, description="The server's TGPLUS_API_TOKEN.")


def _problem(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


GUARDED: dict[int | str, dict[str, Any]] = {
    "4XX": _problem("The request cannot be served as sent."),
    "5XX": _problem("The server cannot serve it now."),
    401: _problem("No bearer token."),
    403: _problem("Wrong bearer token."),
    404: _problem("Not enabled here: the server has no TGPLUS_API_TOKEN."),
}


# -- the database, and recording served predictions ------------------------------------------


async def in_database(state: ServiceState, work: Callable[[FeedbackRepository], T]) -> T:
    """Run `work` on a repository over a new session, in a worker thread."""
    store = await state.ready_store()

    def run() -> T:
        with store.session() as session:
            return work(FeedbackRepository(store, session))

    return await anyio.to_thread.run_sync(run)


async def record_predictions(
    state: ServiceState,
    model_id: str,
    items: Sequence[tuple[str, str, Prediction]],
) -> list[str] | None:
    """Store served (description, title, prediction)s; their ids, or None if not recorded.

    A database problem never fails the prediction: it is logged, the answer
    goes out without ids, and recording pauses for a few seconds so that a
    database that hangs costs one slow answer, not every answer.
    """
    if state.store is None or time.monotonic() < state.recording_paused_until:
        return None
    served = [ServedPrediction(d, t, p.genres, model_id) for d, t, p in items]
    try:
        return await in_database(state, lambda repo: repo.record_predictions(served))
    except StoreError as error:
        state.recording_paused_until = time.monotonic() + RECORDING_PAUSE_SECONDS
        log.warning({"event": "prediction_not_recorded", "error": str(error)})
        return None


# -- the routes --------------------------------------------------------------------------------

router = APIRouter()


async def guard(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> None:
    """404 with no token configured, 401 without a bearer token, 403 with a wrong one."""
    token = service(request).settings.api_token
    if token is None:
        raise HTTPException(404, "not found: this server has no TGPLUS_API_TOKEN set")
    if credentials is None:
        raise HTTPException(
            401,
            "send the token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode("utf-8")
    if not secrets.compare_digest(given, token.get_secret_value().encode("utf-8")):
        raise HTTPException(403, "wrong token")


GUARDED_BY = [Depends(guard)]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _problem("The feedback database is down or read-only.")
}


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackOut,
    tags=["feedback"],
    dependencies=GUARDED_BY,
    responses={
        200: {"model": FeedbackOut, "description": "A duplicate: the earlier row stands."},
        **GUARDED,
        422: {"description": "Unknown genres, unknown prediction_id, or missing fields."},
        **UNAVAILABLE,
    },
)
async def post_feedback(request: Request, body: FeedbackIn) -> JSONResponse:
    """Store an editor's genres for a description, beside what the model suggested."""
    state = service(request)
    predictor = state.require_predictor()
    description, title, suggested = body.description, body.title, body.suggested
    model_id = state.model_id or ""
    if body.prediction_id is not None:
        prediction_id = body.prediction_id
        recorded = await in_database(state, lambda repo: repo.prediction(prediction_id))
        if recorded is None:
            raise InputError(
                f"prediction_id {body.prediction_id!r} is not a recorded prediction; "
                "send description and suggested instead"
            )
        description = description if description is not None else recorded.description
        title = title if title is not None else recorded.title
        suggested = list(recorded.genres)
        model_id = recorded.model_id
    if description is None:
        raise InputError("description is empty; send the movie's plot, or a prediction_id")
    limit = state.settings.max_description_chars
    description, title = check_description(description, limit), check_title(title or "", limit)
    if suggested is None:
        raise InputError("send the suggested genres, or the prediction_id they came from")
    known = set(predictor.genres)
    # A recorded suggestion may come from an older model: check only what the client sent.
    unknown = [g for g in [*body.genres, *(body.suggested or [])] if g not in known]
    if unknown:
        raise InputError(
            f"unknown genres: {', '.join(dict.fromkeys(unknown))}; the model's genres are "
            f"{', '.join(predictor.genres)}"
        )
    item = NewFeedback(
        description=description,
        title=title.strip(),
        suggested=tuple(suggested),
        genres=tuple(body.genres),
        editor=body.editor.strip(),
        note=body.note.strip(),
        model_id=model_id,
        prediction_id=body.prediction_id,
    )
    saved = await in_database(state, lambda repo: repo.add_feedback(item))
    state.editor_metrics.feedback.labels("stored" if saved.created else "duplicate").inc()
    answer = FeedbackOut(id=saved.id, created=saved.created)
    return JSONResponse(answer.model_dump(), status_code=201 if saved.created else 200)


@router.delete(
    "/feedback/{feedback_id}",
    response_model=Deleted,
    tags=["feedback"],
    dependencies=GUARDED_BY,
    responses={**GUARDED, **UNAVAILABLE},
)
async def delete_feedback(
    request: Request, feedback_id: Annotated[int, Path(ge=1, le=FEEDBACK_ID_MAX)]
) -> Deleted:
    """Delete one stored feedback row (the editor's text and genres)."""
    state = service(request)
    if not await in_database(state, lambda repo: repo.delete_feedback(feedback_id)):
        raise HTTPException(404, f"no feedback {feedback_id}")
    return Deleted(deleted=str(feedback_id))


@router.delete(
    "/predictions/{prediction_id}",
    response_model=Deleted,
    tags=["feedback"],
    dependencies=GUARDED_BY,
    responses={**GUARDED, **UNAVAILABLE},
)
async def delete_prediction(
    request: Request, prediction_id: Annotated[str, Path(max_length=PREDICTION_ID_CHARS)]
) -> Deleted:
    """Delete one recorded prediction (the text a user sent to be tagged)."""
    state = service(request)
    if not await in_database(state, lambda repo: repo.delete_prediction(prediction_id)):
        raise HTTPException(404, f"no recorded prediction {prediction_id}")
    return Deleted(deleted=prediction_id)


@router.post(
    "/admin/reload",
    response_model=ReloadOut,
    tags=["model"],
    dependencies=GUARDED_BY,
    responses={
        **GUARDED,
        409: _problem("The new model is broken; the previous one keeps serving."),
    },
)
async def reload(request: Request) -> ReloadOut | JSONResponse:
    """Load the model at the configured path again, check it, and swap it in; with several
    worker processes (`tgplus serve --workers N`), the others then do the same."""
    state = service(request)
    previous = state.model_id
    error = await state.reload()
    if error is not None:
        return error_response(409, f"{error}; still serving {previous or 'no model'}")
    predictor = state.require_predictor()
    return ReloadOut(
        id=state.model_id or "",
        kind=predictor.kind,
        loaded_at=state.loaded_at or "",
        previous=previous,
        other_workers_reloading=announce_reload(state),
    )
