"""The endpoints: the original `GET /<description>`, the JSON API, health, model, metrics, page.

`GET /{description}` matches every path, so these routes must be the app's last.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from tgplus.api.editors import record_predictions
from tgplus.api.errors import CATCH_ALL, TooMuchInput, allow_header, strict_unquote
from tgplus.api.schemas import (
    NOT_BLANK,
    BatchRequest,
    BatchResponse,
    ErrorOut,
    Health,
    ModelOut,
    NotReady,
    PredictionOut,
    PredictRequest,
)
from tgplus.api.state import service
from tgplus.errors import StoreError

WEB = Path(__file__).resolve().parents[1] / "web"
# The classic Prometheus text format, which every scraper reads.
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Every response also gets the security headers of tgplus.api.guard.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
}

# Every route can answer these (limits, overload, a bug); all in the one error shape.
ANY_ERROR: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorOut, "description": "The request cannot be served as sent."},
    "5XX": {"model": ErrorOut, "description": "The server cannot serve it now."},
    413: {"model": ErrorOut, "description": "The request body is over the size limit."},
    503: {"model": ErrorOut, "description": "The model is not loaded, or the server is busy."},
}
ERRORS: dict[int | str, dict[str, Any]] = {
    **ANY_ERROR,
    400: {"model": ErrorOut, "description": "Malformed percent-encoding."},
    422: {"model": ErrorOut, "description": "Empty, too long, or malformed input."},
}

router = APIRouter()


async def predict_one(
    request: Request,
    description: str,
    title: str,
    top_k: int,
    explain: bool = False,
    recall_target: float | None = None,
) -> JSONResponse:
    request.state.description_chars = len(description)
    state = service(request)
    predictor, model_id = state.require_predictor(), state.model_id or ""
    limit = state.settings.max_description_chars
    prediction = await state.run(
        predictor,
        1,
        lambda: predictor.predict_one(
            description,
            title,
            top_k=top_k,
            max_chars=limit,
            explain=explain,
            recall_target=recall_target,
        ),
    )
    state.metrics.predictions.inc()
    body = prediction.as_dict()
    if state.settings.record_predictions:
        ids = await record_predictions(state, model_id, [(description, title, prediction)])
        if ids:
            body["prediction_id"] = ids[0]
    return JSONResponse(body)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(WEB / "index.html", headers=PAGE_HEADERS)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return FileResponse(WEB / "favicon.svg", media_type="image/svg+xml")


@router.get("/health/live", response_model=Health, tags=["health"], responses=ANY_ERROR)
async def live() -> Health:
    """The process is up (even if the model failed to load)."""
    return Health(status="alive")


@router.get(
    "/health/ready",
    response_model=Health,
    tags=["health"],
    responses={**ANY_ERROR, 503: {"model": NotReady, "description": "Not ready, and why."}},
)
async def ready(request: Request) -> Health | JSONResponse:
    """Ready to predict: the model is loaded."""
    state = service(request)
    if state.predictor is None:
        body = NotReady(detail=f"not ready: {state.load_error or 'starting'}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ready", model=state.predictor.kind)


@router.get("/model", response_model=ModelOut, tags=["model"], responses=ANY_ERROR)
async def model_info(request: Request) -> ModelOut:
    """The loaded model's metadata: id, kind, path, bundled or not, genres, thresholds,
    metrics, training data."""
    state = service(request)
    predictor = state.require_predictor()
    meta = predictor.metadata
    return ModelOut(
        id=state.model_id or "",
        loaded_at=state.loaded_at or "",
        kind=predictor.kind,
        path=str(state.location.path) if state.location else "",
        bundled=state.location.bundled if state.location else False,
        genres=list(predictor.genres),
        thresholds=[float(t) for t in predictor.thresholds],
        trained_at=meta.get("trained_at"),
        training_seconds=meta.get("training_seconds"),
        metrics=meta.get("metrics", {}),
        data=[
            {
                "file": Path(str(d.get("path", ""))).name,
                **{k: d.get(k) for k in ("sha256", "format", "rows_kept")},
            }
            for d in meta.get("data", [])
        ],
        hyperparameters=meta.get("hyperparameters", {}),
        versions=meta.get("versions", {}),
    )


@router.get("/metrics", response_class=PlainTextResponse, tags=["health"], responses=ANY_ERROR)
async def prometheus(request: Request) -> Response:
    """Prometheus metrics: requests, latency, predictions, model state, editors' verdicts."""
    state = service(request)
    store = None
    if state.store is not None:
        try:  # migrates a database that was down at startup, as the editors' routes do
            store = await state.ready_store()
        except StoreError:
            state.editor_metrics.store_up.set(0)
    await state.editor_metrics.refresh(store, state.settings.quality_window)
    return PlainTextResponse(generate_latest(state.metrics.registry), media_type=METRICS_TYPE)


@router.get("/predict", response_model=PredictionOut, tags=["predict"], responses=ERRORS)
async def predict_get(
    request: Request,
    description: Annotated[
        str, Query(description="The movie's plot.", json_schema_extra=NOT_BLANK)
    ],
    title: Annotated[str, Query(description="The movie's title, if known.")] = "",
    top_k: Annotated[int, Query(ge=1, le=20)] = 3,
    explain: Annotated[bool, Query(description="Add each top genre's words.")] = False,
    recall_target: Annotated[
        float | None,
        Query(
            gt=0.0,
            lt=1.0,
            allow_inf_nan=False,
            description="Also return a genre set with this recall.",
        ),
    ] = None,
) -> JSONResponse:
    """Tag one description (query string)."""
    strict_unquote(request.scope.get("query_string", b""), "the query string")
    return await predict_one(request, description, title, top_k, explain, recall_target)


@router.post("/predict", response_model=PredictionOut, tags=["predict"], responses=ERRORS)
async def predict_post(request: Request, body: PredictRequest) -> JSONResponse:
    """Tag one description (JSON body)."""
    return await predict_one(
        request, body.description, body.title, body.top_k, body.explain, body.recall_target
    )


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    tags=["predict"],
    responses={
        **ERRORS,
        413: {
            "model": ErrorOut,
            "description": "Too many items (fewer with explain=true) or bytes.",
        },
    },
)
async def predict_batch(request: Request, body: BatchRequest) -> JSONResponse:
    """Tag many descriptions at once, answered in the same order."""
    state = service(request)
    limit = state.settings.max_batch_size
    if len(body.descriptions) > limit:
        raise TooMuchInput(
            f"batch of {len(body.descriptions)} descriptions is over the limit of {limit}; "
            "split it into smaller batches"
        )
    explain_limit = state.settings.max_explain_batch_size
    if body.explain and len(body.descriptions) > explain_limit:
        raise TooMuchInput(
            f"batch of {len(body.descriptions)} descriptions with explain=true is over the "
            f"limit of {explain_limit}; split it, or explain only the ones you need"
        )
    items = body.descriptions
    descriptions = [i if isinstance(i, str) else i.description for i in items]
    titles = ["" if isinstance(i, str) else i.title for i in items]
    request.state.description_chars = sum(map(len, descriptions))
    predictor, model_id = state.require_predictor(), state.model_id or ""
    limit = state.settings.max_description_chars
    predictions = await state.run(
        predictor,
        len(items),
        lambda: predictor.predict(
            descriptions,
            titles,
            top_k=body.top_k,
            max_chars=limit,
            explain=body.explain,
            recall_target=body.recall_target,
        ),
    )
    state.metrics.predictions.inc(len(items))
    answers = [p.as_dict() for p in predictions]
    if state.settings.record_predictions:
        served = list(zip(descriptions, titles, predictions, strict=True))
        ids = await record_predictions(state, model_id, served)
        for answer, prediction_id in zip(answers, ids or [], strict=False):
            answer["prediction_id"] = prediction_id
    return JSONResponse({"predictions": answers})


@router.options("/{path:path}", include_in_schema=False)
async def options(request: Request, path: str) -> Response:
    """Which methods a path takes (CORS preflights, when enabled, are answered before this)."""
    allowed = allow_header(request.app.routes, request.scope["path"])
    return Response(status_code=204, headers={"Allow": allowed})


@router.get(CATCH_ALL, response_model=PredictionOut, tags=["predict"], responses=ERRORS)
async def predict_path(request: Request, description: str) -> JSONResponse:
    """The original demo's call: `GET /<url-encoded description>` -> `{"genre": ...}`."""
    if request.scope["path"] in service(request).paths_without_get:  # e.g. /predict/batch
        allowed = allow_header(request.app.routes, request.scope["path"])
        raise HTTPException(405, f"this path takes {allowed}, not GET", {"Allow": allowed})
    strict_unquote(request.scope.get("raw_path", b""), "the path")
    return await predict_one(request, description, "", 3)


def paths_without_get(routes: Sequence[BaseRoute]) -> frozenset[str]:
    """Fixed paths whose routes take other methods only: GET must not reach the catch-all."""
    paths = set()
    for route in routes:
        path, methods = getattr(route, "path", "{"), getattr(route, "methods", None) or set()
        if "{" not in path and methods and "GET" not in methods:
            paths.add(path)
    return frozenset(paths)
