"""The service used as an attacker or a careless client would: each case reproduced on main."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from tests.fixtures import CRIME
from tgplus.api import JsonLines, create_app
from tgplus.config import Settings
from tgplus.models import load_predictor

SECRET = "A secret plot about a stolen diamond"


def make_client(model: Path, **overrides: Any) -> TestClient:
    return TestClient(create_app(Settings(model_path=model, **overrides)))


@pytest.fixture(scope="module")
def client(fast_model: Path) -> Iterator[TestClient]:
    with make_client(fast_model, max_body_bytes=4096, max_batch_size=8) as client:
        yield client


def _one_shape(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["errors"], list)
    return body


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(JsonLines().format(record) for record in caplog.records)


# -- 2. NaN and friends: a 422, no traceback, no text in the log --------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "true", "1.5", '"3"'])
def test_a_top_k_that_is_not_an_integer_is_422_without_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    body = '{"description": "' + SECRET + '", "top_k": ' + value + "}"
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert _one_shape(response)["errors"][0]["loc"] == ["body", "top_k"]
    logged = _logged(caplog)
    assert "Traceback" not in logged
    assert "diamond" not in logged
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_batch_top_k_of_true_is_422(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"descriptions": [CRIME], "top_k": True})
    assert response.status_code == 422
    assert "not true, false or text" in _one_shape(response)["detail"]


def test_an_unexpected_error_is_a_500_in_the_one_shape_and_logs_no_text(
    fast_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with make_client(fast_model) as client:
        predictor = client.app.state.service.predictor

        def broken(description: str, *args: object, **kwargs: object) -> None:
            raise ValueError(f"cannot handle {description!r}")  # quotes the user's text

        predictor.predict_one = broken
        with caplog.at_level(logging.INFO):
            response = client.post("/predict", json={"description": SECRET})
    assert response.status_code == 500
    assert "diamond" not in response.text
    _one_shape(response)
    logged = _logged(caplog)
    assert "diamond" not in logged
    assert '"event": "unhandled_error"' in logged
    assert '"error": "ValueError"' in logged


# -- 4. bodies are capped before parsing, and errors never echo the input -------------------------


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client: TestClient) -> None:
    not_even_json = b"{" + b"x" * 5000  # parsing it would give a 422
    response = client.post(
        "/predict/batch", content=not_even_json, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "4096 bytes" in _one_shape(response)["detail"]


def test_a_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"descriptions": ["'
        for _ in range(100):
            yield b"x" * 100
        yield b'"]}'

    response = client.post(
        "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    _one_shape(response)


def test_a_validation_error_never_echoes_the_input(fast_model: Path) -> None:
    with make_client(fast_model, max_body_bytes=10_000_000) as client:
        big = {"descriptions": [{"description": ["x" * 1_000_000]}] * 3, "top_k": "many"}
        response = client.post("/predict/batch", json=big)
    assert response.status_code == 422
    assert len(response.content) < 2000
    assert "xxxx" not in response.text
    assert "many" not in response.text
    _one_shape(response)


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/%20%20", None, 422),
        ("POST", "/predict", {"description": 42}, 422),
        ("POST", "/predict", {"description": "ok", "top_k": 0}, 422),
        ("POST", "/predict/batch", {"descriptions": ["a plot"] * 9}, 413),
        ("GET", "/%FF%FE", None, 400),
        ("DELETE", "/predict", None, 405),
        ("POST", "/nowhere", None, 405),  # any path takes GET: a description
        ("GET", "/static/nothing.js", None, 404),
    ],
)
def test_every_error_has_one_shape(
    client: TestClient, method: str, url: str, body: Any, status: int
) -> None:
    response = client.request(method, url, json=body)
    assert response.status_code == status
    _one_shape(response)


def test_the_error_shape_is_documented_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorOut"]
    assert set(error["properties"]) == {"detail", "errors"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            documented = operation["responses"]
            assert "4XX" in documented, path
            assert "5XX" in documented, path


# -- 3. metric labels stay bounded ----------------------------------------------------------------


def test_metric_labels_are_route_templates(client: TestClient) -> None:
    for i in range(50):
        client.get(f"/static/r{i}/missing.js")
        client.request(f"BREW{i}", "/predict")
    client.get("/static/app.js")
    text = client.get("/metrics").text
    assert "r17" not in text
    assert "BREW" not in text
    assert 'route="/static/{path}",status="200"' in text
    labels = [line for line in text.splitlines() if line.startswith("tgplus_requests_total{")]
    assert len(labels) < 20


def test_a_method_no_route_takes_is_labelled_unmatched(client: TestClient) -> None:
    assert client.put("/nowhere/at/all").status_code == 405
    text = client.get("/metrics").text
    assert 'tgplus_requests_total{method="PUT",route="unmatched",status="405"}' in text
    assert "{path:path}" not in text


# -- 7. line breaks in paths ----------------------------------------------------------------------


def test_a_description_with_a_line_break_is_predicted(client: TestClient, fast_model: Path) -> None:
    response = client.get("/A%20heist%0Agoes%20wrong")
    assert response.status_code == 200
    expected = load_predictor(fast_model).predict_one("A heist\ngoes wrong")
    assert response.json()["genre"] == expected.genre


def test_a_line_break_after_an_endpoint_name_is_a_description(client: TestClient) -> None:
    response = client.get("/model%0A")
    assert response.status_code == 200
    assert "genre" in response.json()
    assert "kind" not in response.json()  # not /model's answer
    assert client.post("/predict%0A", json={"description": CRIME}).status_code == 404


# -- smaller cases --------------------------------------------------------------------------------


def test_get_predict_batch_is_405_not_a_prediction(client: TestClient) -> None:
    response = client.get("/predict/batch")
    assert response.status_code == 405
    assert response.headers["allow"] == "OPTIONS, POST"
    _one_shape(response)


def test_options_and_405_name_every_method_of_the_path(client: TestClient) -> None:
    response = client.options("/predict")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, OPTIONS, POST"
    assert client.put("/predict").headers["allow"] == "GET, OPTIONS, POST"
    assert client.options("/any%20description").headers["allow"] == "GET, OPTIONS"


def test_model_info_has_no_server_paths(client: TestClient) -> None:
    data = client.get("/model").json()["data"]
    assert [d["file"] for d in data] == ["top10K-TMDB-movies.csv", "movies_metadata.csv"]
    assert "/" not in json.dumps(data)


def test_security_headers_on_every_response(client: TestClient) -> None:
    for response in (
        client.get("/health/live"),
        client.get("/static/app.js"),
        client.post("/predict", json={}),
        client.delete("/model"),
        client.get("/"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in client.get("/").headers["content-security-policy"]


def test_cors_is_off_unless_origins_are_set(client: TestClient, fast_model: Path) -> None:
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}
    response = client.options("/predict", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    with make_client(fast_model, cors_origins=["https://a.example"]) as allowed:
        response = allowed.options("/predict", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        other = allowed.options("/predict", headers={**preflight, "Origin": "https://b.example"})
        assert "access-control-allow-origin" not in other.headers
        assert other.status_code == 400
        assert other.headers["content-type"] == "application/json"
        assert other.json()["detail"].startswith(
            "cross-origin request refused (origin not allowed); the server allows"
        )
        patching = allowed.options(
            "/predict", headers={**preflight, "Access-Control-Request-Method": "PATCH"}
        )
        assert "(method not allowed)" in patching.json()["detail"]


def test_cors_allows_the_editor_endpoints_bearer_token_and_delete(fast_model: Path) -> None:
    preflight = {
        "Origin": "https://a.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with make_client(fast_model, cors_origins=["https://a.example"]) as allowed:
        response = allowed.options("/feedback", headers=preflight)
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert "DELETE" in response.headers["access-control-allow-methods"]
        deleting = {**preflight, "Access-Control-Request-Method": "DELETE"}
        assert allowed.options("/feedback/1", headers=deleting).status_code == 200


# -- saturation: 503 + Retry-After rather than an unbounded queue -------------------------------


@pytest.mark.anyio
async def test_a_saturated_server_answers_503_with_retry_after(fast_model: Path) -> None:
    app = create_app(Settings(model_path=fast_model, max_concurrent_requests=1))
    release = anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"description": '
        await release.wait()
        yield b'"A heist."}'

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        details: list[str] = []

        async def held() -> None:
            response = await client.post(
                "/predict", content=slow_body(), headers={"content-type": "application/json"}
            )
            details.append(response.json()["detail"])  # no lifespan here: no model either

        async with anyio.create_task_group() as group:
            group.start_soon(held)
            await anyio.sleep(0.2)
            busy = await client.get("/health/live")
            release.set()
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        _one_shape(busy)
        assert (await client.get("/health/live")).status_code == 200
    assert len(details) == 1
    assert "busy" not in details[0]
