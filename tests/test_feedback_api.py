"""Editors over HTTP, on real SQLite and PostgreSQL: feedback, tokens, deletion, reload, metrics."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures import CRIME, HORROR, free_port
from tgplus.api import create_app
from tgplus.config import Settings
from tgplus.feedback import FeedbackRepository, FeedbackStore, ServedPrediction

TOKEN = "editor-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def answer(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": CRIME,
        "title": "Heat",
        "suggested": ["Crime", "Thriller"],
        "genres": ["Crime", "Drama"],
        "editor": "ana",
    }
    body.update(fields)
    return body


def stored(url: str) -> list[tuple[str, list[str], list[str], str]]:
    store = FeedbackStore(url)
    try:
        with store.session() as session:
            rows = FeedbackRepository(store, session).feedback(newest_first=False)
        return [(r.description, r.suggested, r.genres, r.editor) for r in rows]
    finally:
        store.dispose()


@pytest.fixture
def model(fast_model: Path, tmp_path: Path) -> Path:
    """A copy of the fast model that a test may replace or break."""
    return Path(shutil.copytree(fast_model, tmp_path / "model"))


@pytest.fixture
def client(model: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(model_path=model, database_url=database_url, api_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        yield client


# -- access ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/feedback"), ("DELETE", "/feedback/1"), ("POST", "/admin/reload")],
)
def test_without_a_configured_token_the_guarded_endpoints_do_not_exist(
    fast_model: Path, tmp_path: Path, method: str, path: str
) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    for token in (None, "", "  "):
        settings = Settings(model_path=fast_model, database_url=url, api_token=token)
        with TestClient(create_app(settings)) as client:
            response = client.request(method, path, json=answer(), headers=AUTH)
            assert response.status_code == 404
            assert "TGPLUS_API_TOKEN" in response.json()["detail"]
            assert client.get("/predict", params={"description": CRIME}).status_code == 200
    assert not (tmp_path / "feedback.sqlite3").exists()  # nothing opened, nothing written


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/feedback"), ("DELETE", "/feedback/1"), ("POST", "/admin/reload")],
)
def test_a_missing_token_is_401_and_a_wrong_one_403(
    client: TestClient, method: str, path: str
) -> None:
    missing = client.request(method, path, json=answer())
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer x"):
        response = client.request(method, path, json=answer(), headers={"Authorization": wrong})
        assert response.status_code == 403
    assert (
        client.request(method, path, json=answer(), headers={"Authorization": TOKEN}).status_code
        == 401
    )


# -- feedback ----------------------------------------------------------------------------------


def test_feedback_is_stored_beside_the_suggestion(client: TestClient, database_url: str) -> None:
    response = client.post("/feedback", json=answer(note="Drama, not a thriller"), headers=AUTH)
    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True
    assert stored(database_url) == [(CRIME, ["Crime", "Thriller"], ["Crime", "Drama"], "ana")]
    again = client.post("/feedback", json=answer(), headers=AUTH)
    assert again.status_code == 200
    assert again.json() == {"id": body["id"], "created": False}
    assert len(stored(database_url)) == 1


def test_unknown_genres_are_named(client: TestClient) -> None:
    response = client.post(
        "/feedback", json=answer(genres=["Crime", "Noir"], suggested=["Heist"]), headers=AUTH
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("unknown genres: Noir, Heist; the model's genres")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"suggested": None}, "send the suggested genres, or the prediction_id"),
        ({"description": "  "}, "description is empty"),
        ({"prediction_id": "nothere"}, "'nothere' is not a recorded prediction"),
    ],
)
def test_incomplete_feedback_is_422(
    client: TestClient, fields: dict[str, Any], message: str
) -> None:
    response = client.post("/feedback", json=answer(**fields), headers=AUTH)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_an_empty_genre_list_is_422(client: TestClient) -> None:
    assert client.post("/feedback", json=answer(genres=[]), headers=AUTH).status_code == 422


def test_deleting_feedback(client: TestClient, database_url: str) -> None:
    feedback_id = client.post("/feedback", json=answer(), headers=AUTH).json()["id"]
    assert client.delete(f"/feedback/{feedback_id}", headers=AUTH).status_code == 200
    assert stored(database_url) == []
    assert client.delete(f"/feedback/{feedback_id}", headers=AUTH).status_code == 404


@pytest.mark.parametrize("feedback_id", [2**31, 10**23])
def test_an_id_beyond_the_column_is_422_not_a_server_error(
    client: TestClient, feedback_id: int
) -> None:
    """Ids are 32-bit integers in the table: a larger one once overflowed SQLite (500)."""
    response = client.delete(f"/feedback/{feedback_id}", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "feedback_id"]
    assert client.delete(f"/feedback/{2**31 - 1}", headers=AUTH).status_code == 404


@pytest.mark.parametrize("path", ["/predictions/%FF", "/feedback/%C3"])
def test_a_path_that_is_not_utf8_is_400_on_the_editors_endpoints_too(
    client: TestClient, path: str
) -> None:
    """`DELETE /predictions/%FF` once looked for a prediction named U+FFFD (404)."""
    response = client.delete(path, headers=AUTH)
    assert response.status_code == 400
    assert (
        response.json()["detail"] == "the path is not UTF-8 once percent-decoded; send UTF-8 text"
    )


def test_live_quality_in_metrics(client: TestClient) -> None:
    client.post("/feedback", json=answer(), headers=AUTH)  # top kept, Thriller wrong, Drama missed
    client.post(
        "/feedback",
        json=answer(description=HORROR, suggested=["Horror"], genres=["Thriller"]),
        headers=AUTH,
    )
    text = client.get("/metrics").text
    assert "tgplus_feedback_store_up 1.0" in text
    assert "tgplus_feedback_window_rows 2.0" in text
    assert "tgplus_feedback_top_genre_kept_ratio 0.5" in text
    assert "tgplus_feedback_precision 0.333333" in text  # Crime of Crime, Thriller, Horror
    assert "tgplus_feedback_recall 0.333333" in text  # Crime of Crime, Drama, Thriller
    assert 'tgplus_feedback_genre_precision{genre="Crime"} 1.0' in text
    assert 'tgplus_feedback_genre_recall{genre="Thriller"} 0.0' in text
    assert 'tgplus_feedback_received_total{result="stored"} 2.0' in text


def test_metrics_read_the_quality_once_a_database_down_at_startup_is_back(
    model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "feedback.sqlite3"
    path.mkdir()  # a folder where the database file should be: it cannot be opened
    settings = Settings(model_path=model, database_url=f"sqlite:///{path}", api_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        assert "tgplus_feedback_store_up 0.0" in client.get("/metrics").text
        path.rmdir()
        text = client.get("/metrics").text
        assert "tgplus_feedback_store_up 1.0" in text
        assert "tgplus_feedback_window_rows 0.0" in text


# -- recorded predictions ----------------------------------------------------------------------


def test_recorded_predictions_can_be_pointed_at(model: Path, database_url: str) -> None:
    settings = Settings(
        model_path=model, database_url=database_url, api_token=TOKEN, record_predictions=True
    )
    with TestClient(create_app(settings)) as client:
        served = client.post("/predict", json={"description": CRIME, "title": "Heat"}).json()
        by_get = client.get("/predict", params={"description": HORROR}).json()
        batch = client.post("/predict/batch", json={"descriptions": [CRIME, HORROR]}).json()
        ids = [served["prediction_id"], by_get["prediction_id"]]
        ids += [p["prediction_id"] for p in batch["predictions"]]
        assert len(set(ids)) == 4
        response = client.post(
            "/feedback",
            json={"prediction_id": served["prediction_id"], "genres": ["Drama"]},
            headers=AUTH,
        )
        assert response.status_code == 201
        [row] = stored(database_url)
        assert row[:3] == (CRIME, served["genres"], ["Drama"])
        assert client.delete(f"/predictions/{ids[1]}", headers=AUTH).status_code == 200
        assert client.delete(f"/predictions/{ids[1]}", headers=AUTH).status_code == 404


def test_a_suggestion_recorded_by_an_older_model_still_takes_feedback(
    client: TestClient, database_url: str
) -> None:
    store = FeedbackStore(database_url)
    try:
        with store.session() as session:
            [old_id] = FeedbackRepository(store, session).record_predictions(
                [ServedPrediction(CRIME, "Heat", ("Film-Noir",), "an-older-model")]
            )
    finally:
        store.dispose()
    response = client.post(
        "/feedback", json={"prediction_id": old_id, "genres": ["Drama"]}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    assert stored(database_url)[0][1:3] == (["Film-Noir"], ["Drama"])


def test_without_recording_nothing_is_stored_and_no_id_is_returned(
    client: TestClient, database_url: str
) -> None:
    assert "prediction_id" not in client.post("/predict", json={"description": CRIME}).json()
    store = FeedbackStore(database_url)
    try:
        with store.session() as session:
            assert FeedbackRepository(store, session).counts()["predictions"] == 0
    finally:
        store.dispose()


# -- the database down or read-only ------------------------------------------------------------


@pytest.mark.parametrize("problem", ["down", "read-only"])
def test_a_broken_database_is_503_for_feedback_while_predictions_work(
    model: Path, tmp_path: Path, problem: str, postgres_down_url: str
) -> None:
    if problem == "down":
        url = postgres_down_url
    else:
        path = tmp_path / "feedback.sqlite3"
        FeedbackStore(f"sqlite:///{path}").upgrade()
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    settings = Settings(
        model_path=model, database_url=url, api_token=TOKEN, record_predictions=True
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/feedback", json=answer(), headers=AUTH)
        assert response.status_code == 503
        assert "feedback database" in response.json()["detail"]
        assert "check TGPLUS_DATABASE_URL" in response.json()["detail"]
        prediction = client.post("/predict", json={"description": CRIME})
        assert prediction.status_code == 200
        assert "prediction_id" not in prediction.json()
        # A read-only database still answers the quality query; one that is down does not.
        up = "0.0" if problem == "down" else "1.0"
        assert f"tgplus_feedback_store_up {up}" in client.get("/metrics").text


# -- the model: its id, and reloading it -------------------------------------------------------


def _model_id(path: Path) -> str:
    return str(json.loads((path / "metadata.json").read_text())["metadata_sha256"])


@pytest.fixture(scope="module")
def majority_model(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    from tgplus.training import train

    path = tmp_path_factory.mktemp("models") / "majority"
    train([small_data], kind="majority", out=path)
    return path


def test_reload_swaps_in_a_new_model_and_keeps_the_old_one_if_the_new_is_broken(
    client: TestClient, model: Path, majority_model: Path
) -> None:
    first = client.get("/model").json()
    assert first["id"] == _model_id(model)
    assert first["loaded_at"].endswith("+00:00")
    shutil.rmtree(model)
    shutil.copytree(majority_model, model)
    reloaded = client.post("/admin/reload", headers=AUTH)
    assert reloaded.status_code == 200
    assert reloaded.json()["previous"] == first["id"]
    assert reloaded.json()["id"] == _model_id(majority_model)
    assert reloaded.json()["other_workers_reloading"] is False  # one process: nobody to tell
    assert client.get("/model").json()["kind"] == "majority"

    (model / "model.npz").write_bytes(b"not a model")
    broken = client.post("/admin/reload", headers=AUTH)
    assert broken.status_code == 409
    assert "checksum mismatch" in broken.json()["detail"]
    assert f"still serving {_model_id(majority_model)}" in broken.json()["detail"]
    assert client.get("/model").json()["id"] == _model_id(majority_model)
    assert client.post("/predict", json={"description": CRIME}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'tgplus_model_loads_total{result="failed"} 1.0' in metrics


def test_sighup_reloads_the_model_of_a_running_server(model: Path, majority_model: Path) -> None:
    """A real `tgplus serve` process: replace the model on disk, send SIGHUP, see the new id."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    env = {**os.environ, "TGPLUS_MODEL_PATH": str(model), "TGPLUS_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "tgplus", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def model_id(expected: str) -> str:
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/model"
                with urllib.request.urlopen(url, timeout=2) as response:
                    found = str(json.loads(response.read())["id"])
                    if found == expected:
                        return found
            except OSError:
                assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, f"the server never served {expected}"
            time.sleep(0.1)

    try:
        model_id(_model_id(model))
        shutil.rmtree(model)
        shutil.copytree(majority_model, model)
        server.send_signal(signal.SIGHUP)
        model_id(_model_id(majority_model))
        assert server.poll() is None  # reloaded in place, not restarted
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=10)
    assert b"Traceback" not in errors


@pytest.mark.anyio
async def test_a_reload_announced_while_a_worker_starts_is_not_lost(
    model: Path, majority_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker still loading its first model when another reloaded once took that
    announcement as its starting point and served the old model for ever (seen as a
    flaky failure of the two-worker reload test)."""
    import anyio

    from tgplus.api.observability import Metrics
    from tgplus.api.state import RELOAD_FILE_VARIABLE, ServiceState, follow_reloads

    announcements = tmp_path / "reload"
    announcements.write_text("first", encoding="utf-8")
    monkeypatch.setenv(RELOAD_FILE_VARIABLE, str(announcements))
    state = ServiceState(Settings(model_path=model), Metrics())
    assert await state.reload() is None  # startup: the old model
    # ...and before this worker watches the file, another one swaps a new model in
    shutil.rmtree(model)
    shutil.copytree(majority_model, model)
    announcements.write_text("second", encoding="utf-8")
    async with follow_reloads(state):
        await anyio.sleep(1.2)
        assert state.model_id == _model_id(majority_model)


@pytest.mark.anyio
async def test_a_worker_follows_announced_reloads_and_keeps_its_model_if_the_new_is_broken(
    model: Path, majority_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from tgplus.api.observability import Metrics
    from tgplus.api.state import RELOAD_FILE_VARIABLE, ServiceState, follow_reloads

    announcements = tmp_path / "reload"
    announcements.write_text("first", encoding="utf-8")
    monkeypatch.setenv(RELOAD_FILE_VARIABLE, str(announcements))
    state = ServiceState(Settings(model_path=model), Metrics())
    assert await state.reload() is None
    first = state.model_id
    async with follow_reloads(state):
        shutil.rmtree(model)
        shutil.copytree(majority_model, model)
        await anyio.sleep(1.2)
        assert state.model_id == first  # a new model on disk, but nothing announced
        announcements.write_text("second", encoding="utf-8")
        await anyio.sleep(1.2)
        assert state.model_id == _model_id(majority_model)
        (model / "model.npz").write_bytes(b"not a model")
        announcements.write_text("third", encoding="utf-8")
        await anyio.sleep(1.2)
        assert state.model_id == _model_id(majority_model)  # kept: the new one is broken
    failed = state.metrics.registry.get_sample_value(
        "tgplus_model_loads_total", {"result": "failed"}
    )
    assert failed == 1.0


def test_reload_over_http_reaches_every_worker_of_a_several_worker_server(
    model: Path, majority_model: Path, tmp_path: Path
) -> None:
    """A request reaches one worker; the others must serve the new model too, not the old."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    env = {
        **os.environ,
        "TGPLUS_MODEL_PATH": str(model),
        "TGPLUS_API_TOKEN": TOKEN,
        "TGPLUS_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "TGPLUS_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "tgplus", "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"

    def served_ids(requests: int) -> set[str]:
        """The model ids of `requests` answers, each on a new connection (any worker)."""
        found = set()
        for _ in range(requests):
            with urllib.request.urlopen(f"{base}/model", timeout=5) as response:
                found.add(str(json.loads(response.read())["id"]))
        return found

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if served_ids(1) == {_model_id(model)}:
                    break
            except OSError:
                assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        old = _model_id(model)
        shutil.rmtree(model)
        shutil.copytree(majority_model, model)
        request = urllib.request.Request(f"{base}/admin/reload", method="POST", headers=AUTH)
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["previous"] == old
        assert answer["other_workers_reloading"] is True
        new = _model_id(majority_model)
        deadline = time.monotonic() + 60
        # 40 answers on new connections: both workers, whichever each reached
        while (ids := served_ids(40)) != {new}:
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, f"still served after the reload: {ids - {new}}"
            time.sleep(0.2)
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert b"Traceback" not in errors


# -- awkward text and fuzzing ------------------------------------------------------------------


def test_nul_characters_and_lone_surrogates_are_stored_not_refused(
    model: Path, database_url: str
) -> None:
    """PostgreSQL refuses NUL in text and no engine encodes a lone surrogate; JSON allows both."""
    settings = Settings(
        model_path=model, database_url=database_url, api_token=TOKEN, record_predictions=True
    )
    awkward = CRIME + "\u0000 and \ud800 too"
    body = json.dumps({"description": awkward}).encode()
    with TestClient(create_app(settings)) as client:
        served = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert served.status_code == 200
        assert "prediction_id" in served.json()
        response = client.post(
            "/feedback",
            content=json.dumps(answer(description=awkward, note="\u0000")).encode(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status_code == 201
    [row] = stored(database_url)
    assert row[0] == CRIME + " and ? too"


def test_fuzz_the_editors_endpoints_with_the_token(model: Path, tmp_path: Path) -> None:
    """Generated requests with the right token, predictions recorded: no 5xx, schema kept."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import positive_data_acceptance
    from schemathesis.core.result import Ok

    app = create_app(
        Settings(
            model_path=model,
            database_url=f"sqlite:///{tmp_path / 'fuzz.sqlite3'}",
            api_token=TOKEN,
            record_predictions=True,
        )
    )
    with TestClient(app):  # runs the startup: model loaded, database migrated
        api = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [
            result.ok()
            for result in api.get_all_operations()
            if isinstance(result, Ok)
            and (
                result.ok().path in ("/feedback", "/feedback/{feedback_id}", "/predict")
                or result.ok().path.startswith("/predictions")
            )
        ]
        assert len(operations) == 5
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=40,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                derandomize=True,
            )
            def check(case: Any) -> None:
                # A schema cannot say which genres the loaded model knows or which
                # prediction ids exist, so a schema-valid body may rightly be a 422.
                case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

            check()
