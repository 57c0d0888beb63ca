"""The Python API a notebook uses: `tgplus.load()`, plain strings, str paths."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

import tgplus
from tests.fixtures import CRIME, HORROR
from tests.test_bundle import GANGSTER
from tgplus.errors import ModelError
from tgplus.models.bundled import BUNDLED_MODEL


def test_load_without_a_path_gives_the_bundled_model_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # no data/model here
    with caplog.at_level(logging.INFO, logger="tgplus"):
        model = tgplus.load()
    assert model.predict_one(GANGSTER).genre == "Crime"
    said = [r.getMessage() for r in caplog.records if "bundled" in r.getMessage()]
    assert len(said) == 1
    assert str(BUNDLED_MODEL) in said[0]


def test_load_prefers_a_trained_data_model(
    fast_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(fast_model, tmp_path / "data" / "model")
    monkeypatch.chdir(tmp_path)
    model = tgplus.load()
    assert "bundle" not in model.metadata
    assert model.metadata["trained_at"] == tgplus.load(fast_model).metadata["trained_at"]


def test_load_takes_str_and_path(fast_model: Path) -> None:
    by_str, by_path = tgplus.load(str(fast_model)), tgplus.load(fast_model)
    assert by_str.predict_one(CRIME) == by_path.predict_one(CRIME)


def test_load_of_nothing_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model here"):
        tgplus.load(str(tmp_path / "none"))


def test_predict_takes_a_plain_string_as_one_description() -> None:
    model = tgplus.load(BUNDLED_MODEL)
    (one,) = model.predict(GANGSTER)
    assert one == model.predict([GANGSTER])[0]
    assert one.genre == "Crime"
    titled = model.predict(HORROR, "The Farmhouse")
    assert titled == model.predict([HORROR], ["The Farmhouse"])
    assert model.scores(CRIME).shape == (1, len(model.genres))


def test_model_files_take_str_paths(fast_model: Path, tmp_path: Path) -> None:
    from tgplus.models import load_predictor, read_metadata, save_predictor

    model = load_predictor(str(fast_model))  # was an AttributeError on str
    assert read_metadata(str(fast_model))["kind"] == "fast"
    saved = save_predictor(model, str(tmp_path / "copy"))
    assert saved == tmp_path / "copy"
    assert load_predictor(str(saved)).predict_one(CRIME) == model.predict_one(CRIME)


def test_the_readmes_python_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## In Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) == 3
    monkeypatch.chdir(tmp_path)  # no data/model: the bundled model
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out == "Crime\n"


def test_score_frame_defaults_to_the_bundled_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    monkeypatch.chdir(tmp_path)  # no data/model here
    monkeypatch.delenv("TGPLUS_MODEL_PATH", raising=False)
    frame = pd.DataFrame({"overview": ["A mafia boss's son becomes a ruthless gangster."]})
    scored = tgplus.score_frame(frame, title=None)
    assert scored["predicted_genre"].tolist() == ["Crime"]
