"""The model shipped inside the package: it loads, answers sensibly, and says what made it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import SHARED_DATA
from tests.fixtures import COMEDY, CRIME, HORROR, SPACE
from tgplus.cli import app
from tgplus.errors import ModelError
from tgplus.files import sha256_file
from tgplus.models import Predictor, load_predictor, read_metadata
from tgplus.models import bundled as bundled_module
from tgplus.models.bundled import BUNDLED_MODEL
from tgplus.models.lexical import FastModel
from tgplus.training import train

GANGSTER = "The true story of notorious gangster Romeo Corleone's downfall."
runner = CliRunner()


@pytest.fixture(scope="module")
def bundled() -> Predictor:
    return load_predictor(BUNDLED_MODEL)


@pytest.mark.parametrize(
    ("description", "genre"),
    [(GANGSTER, "Crime"), (CRIME, "Crime"), (HORROR, "Horror"), (COMEDY, "Comedy"),
     (SPACE, "Science Fiction")],
)  # fmt: skip
def test_the_bundled_model_answers_the_demos_examples(
    bundled: Predictor, description: str, genre: str
) -> None:
    assert bundled.kind == "fast"
    assert bundled.calibration is not None  # confidence and recall targets work with it
    assert bundled.predict_one(description).genre == genre


def test_the_bundled_model_is_small_and_stored_in_half_precision() -> None:
    size = sum(f.stat().st_size for f in BUNDLED_MODEL.iterdir())
    assert size < 8_000_000
    with np.load(BUNDLED_MODEL / "model.npz", allow_pickle=False) as arrays:
        assert arrays["logistic_coef"].dtype == np.float16
        assert arrays["static_projected"].dtype == np.float16


def test_the_bundled_models_data_are_the_shared_files() -> None:
    metadata = read_metadata(BUNDLED_MODEL)
    assert metadata["data"], "the bundled model lists no data files"
    for entry in metadata["data"]:
        assert not Path(entry["path"]).is_absolute()  # no path of the machine that built it
        shared = SHARED_DATA / entry["path"]
        assert shared.is_file(), f"{entry['path']} is not among the shared files"
        assert sha256_file(shared) == entry["sha256"], f"{entry['path']} changed; make bundle"


def test_compaction_cost_is_recorded_and_within_budget() -> None:
    metrics = read_metadata(BUNDLED_MODEL)["metrics"]
    compact, full = metrics["test"], metrics["test_full_precision"]
    assert compact["movies"] == full["movies"] > 500
    assert compact["hit_at_1"] >= full["hit_at_1"] - 0.005


def test_a_compacted_model_saves_and_loads_as_it_predicts(small_data: Path, tmp_path: Path) -> None:
    from tgplus.models import save_predictor

    full = train([small_data], kind="fast").predictor
    assert isinstance(full.model, FastModel)
    compacted = full.model.compacted(keep_terms=0.5)
    compact = Predictor(compacted, full.thresholds)
    assert compacted.scorers_.features_.size == round(full.model.scorers_.features_.size * 0.5)
    reloaded = load_predictor(save_predictor(compact, tmp_path / "compact"))
    texts = [CRIME, HORROR, COMEDY, SPACE]
    np.testing.assert_array_equal(
        reloaded.model.predict_proba(texts), compact.model.predict_proba(texts)
    )
    half = full.model.compacted(keep_terms=1.0)  # float16 alone barely moves a score
    np.testing.assert_allclose(
        half.predict_proba(texts), full.model.predict_proba(texts), atol=0.002
    )
    with pytest.raises(ModelError, match="keep_terms"):
        full.model.compacted(keep_terms=0.0)


def test_make_bundle_records_paths_under_the_data_root(small_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundled"
    result = runner.invoke(
        app,
        ["bundle", "--data-root", str(small_data.parent), "--data", str(small_data),
         "--out", str(out), "--keep-terms", "0.8", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bytes"] > 0
    assert set(report["metrics"]) == {"compact", "full_precision"}
    metadata = read_metadata(out)
    assert metadata["data"][0]["path"] == small_data.name
    assert metadata["data"][0]["sha256"] == sha256_file(small_data)
    assert metadata["bundle"]["keep_terms"] == 0.8
    assert metadata["hyperparameters"]["precision"] == "float16"


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_damaged_bundled_model_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    broken = tmp_path / "site-packages" / "tgplus" / "bundled"
    if damage == "truncated":
        shutil.copytree(BUNDLED_MODEL, broken)
        arrays = (broken / "model.npz").read_bytes()
        (broken / "model.npz").write_bytes(arrays[: len(arrays) // 2])
    monkeypatch.setattr(bundled_module, "BUNDLED_MODEL", broken)
    monkeypatch.chdir(tmp_path)  # no data/model here
    monkeypatch.delenv("TGPLUS_MODEL_PATH", raising=False)
    result = runner.invoke(app, ["predict", GANGSTER])
    assert result.exit_code == 2
    said, error = result.stderr.splitlines()
    assert said.startswith("using the bundled model")
    assert error.startswith("error: ")
    assert str(broken) in error
    assert "Traceback" not in result.stderr


def test_evaluating_the_bundled_model_needs_data_and_works_with_it(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no data/model here
    monkeypatch.delenv("TGPLUS_MODEL_PATH", raising=False)
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == 2
    said, error = result.stderr.splitlines()
    assert said.startswith("using the bundled model")
    assert error.startswith("error: ")
    assert "pass --data" in error
    result = runner.invoke(app, ["evaluate", "--data", str(small_data), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["hit_at_1"] > 0.6
