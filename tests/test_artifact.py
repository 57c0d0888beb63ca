"""Model integrity and safe saving: edited metadata is refused, --out never destroys user files."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tgplus.cli import app as cli
from tgplus.errors import ModelError
from tgplus.models import Predictor, load_predictor, save_predictor
from tgplus.models.artifact import ARRAYS_FILE, METADATA_FILE, metadata_checksum

Metadata = dict[str, Any]


@pytest.fixture(scope="module")
def fast(fast_model: Path) -> Predictor:
    return load_predictor(fast_model)


def _copy(model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model, tmp_path / "model"))


def _edit(model: Path, change: Callable[[Metadata], object], *, reseal: bool) -> None:
    """Change metadata.json as a careless hand would, optionally recomputing its checksum."""
    metadata = json.loads((model / METADATA_FILE).read_text(encoding="utf-8"))
    change(metadata)
    if reseal:
        metadata["metadata_sha256"] = metadata_checksum(metadata)
    (model / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")


# -- the checksum covers metadata.json -----------------------------------------------------------


def _rename_genre(metadata: Metadata) -> None:
    metadata["genres"][metadata["genres"].index("Crime")] = "Explosions"


def _lower_threshold(metadata: Metadata) -> None:
    metadata["thresholds"][0] = round(metadata["thresholds"][0] / 2, 6)


@pytest.mark.parametrize(
    "change",
    [
        _rename_genre,
        _lower_threshold,
        lambda m: m["thresholds"].__setitem__(1, math.nan),
        lambda m: m.update(kind="majority"),
        lambda m: m.pop("metadata_sha256", None),
    ],
    ids=["genre renamed", "threshold lowered", "NaN threshold", "kind changed", "no checksum"],
)
def test_an_edited_metadata_file_is_refused(
    fast_model: Path, tmp_path: Path, change: Callable[[Metadata], object]
) -> None:
    model = _copy(fast_model, tmp_path)
    _edit(model, change, reseal=False)
    with pytest.raises(ModelError, match=r"metadata\.json: checksum mismatch"):
        load_predictor(model)


def test_reformatting_metadata_keeps_the_model_loadable(fast_model: Path, tmp_path: Path) -> None:
    """The checksum is of the content, not the bytes: re-indenting the JSON is harmless."""
    model = _copy(fast_model, tmp_path)
    _edit(model, lambda m: None, reseal=False)
    assert load_predictor(model).genres == load_predictor(fast_model).genres


def test_a_model_without_a_metadata_checksum_asks_for_retraining(
    fast_model: Path, tmp_path: Path
) -> None:
    model = _copy(fast_model, tmp_path)
    _edit(model, lambda m: (m.pop("metadata_sha256"), m.update(format_version=1)), reseal=False)
    with pytest.raises(ModelError, match=r"older tgplus .* retrain"):
        load_predictor(model)


# -- genres and thresholds are validated even when the checksum matches -------------------------


def _drop_last_genre(metadata: Metadata) -> None:
    metadata["genres"].pop()
    metadata["thresholds"].pop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["thresholds"].__setitem__(0, math.nan), "threshold of 'Action' is nan"),
        (lambda m: m["thresholds"].__setitem__(0, math.inf), "threshold of 'Action' is inf"),
        (lambda m: m["thresholds"].__setitem__(0, 1.5), "not within 0..1"),
        (lambda m: m["thresholds"].__setitem__(0, -0.1), "not within 0..1"),
        (lambda m: m["genres"].__setitem__(1, m["genres"][0]), "'Action' appears more than once"),
        (lambda m: m["genres"].__setitem__(0, "  "), "genre 0 is blank"),
        (lambda m: m.update(genres=["Drama"], thresholds=[0.5]), "at least two"),
        (_drop_last_genre, r"shape \(\d+, 20\), expected \(\d+, 19\)"),
    ],
    ids=[
        "nan",
        "inf",
        "above 1",
        "below 0",
        "repeated genre",
        "blank genre",
        "one genre",
        "arrays",
    ],
)
def test_impossible_genres_and_thresholds_are_refused(
    fast_model: Path, tmp_path: Path, change: Callable[[Metadata], object], message: str
) -> None:
    model = _copy(fast_model, tmp_path)
    _edit(model, change, reseal=True)
    with pytest.raises(ModelError, match=message):
        load_predictor(model)


# -- saving never destroys what is not a model ---------------------------------------------------


def test_saving_into_a_directory_of_other_files_is_refused(fast: Predictor, tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "thesis.txt").write_text("four years of work")
    with pytest.raises(
        ModelError, match=r"d: not a tgplus model directory \(it holds thesis\.txt\)"
    ):
        save_predictor(fast, target)
    assert (target / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_a_model_with_a_stray_file_is_not_replaced(fast: Predictor, tmp_path: Path) -> None:
    target = save_predictor(fast, tmp_path / "model")
    (target / "notes.md").write_text("mine")
    with pytest.raises(ModelError, match=r"it holds notes\.md"):
        save_predictor(fast, target)
    assert (target / "notes.md").read_text() == "mine"


def test_an_empty_directory_or_a_previous_model_may_be_replaced(
    fast: Predictor, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    load_predictor(save_predictor(fast, tmp_path / "empty"))
    load_predictor(save_predictor(fast, tmp_path / "empty"))  # over the model just saved


def test_train_refuses_a_directory_of_other_files_before_training(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproduced: `tgplus train --out d` exited 0 and deleted thesis.txt."""
    from tgplus.models.lexical import FastModel

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although --out was refused")

    monkeypatch.setattr(FastModel, "fit", no_training)
    target = tmp_path / "d"
    target.mkdir()
    (target / "thesis.txt").write_text("four years of work")
    result = CliRunner().invoke(cli, ["train", "--data", str(small_data), "--out", str(target)])
    assert result.exit_code == 2, result.output
    assert "not a tgplus model directory" in result.output
    assert "thesis.txt" in result.output
    assert "Traceback" not in result.output
    assert (target / "thesis.txt").read_text() == "four years of work"


# -- replacing a model, and what interrupted saves leave behind ----------------------------------


def test_the_previous_model_serves_until_the_new_one_is_complete(
    fast: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = save_predictor(fast, tmp_path / "model")
    before = (target / METADATA_FILE).read_bytes()
    loaded_while_saving: list[Predictor] = []
    savez = np.savez_compressed

    def save_and_look(*args: Any, **kwargs: Any) -> None:
        loaded_while_saving.append(load_predictor(target))
        savez(*args, **kwargs)

    monkeypatch.setattr(np, "savez_compressed", save_and_look)
    save_predictor(fast, target)
    assert loaded_while_saving
    assert loaded_while_saving[0].metadata == json.loads(before)
    load_predictor(target)


def test_an_interruption_between_the_renames_puts_the_old_model_back(
    fast: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = save_predictor(fast, tmp_path / "model")
    before = (target / METADATA_FILE).read_bytes()
    replace = Path.replace

    def interrupted(self: Path, destination: Path) -> Path:
        if self.name.endswith(".partial"):  # the new model's rename into place
            raise KeyboardInterrupt
        return replace(self, destination)

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_predictor(fast, target)
    monkeypatch.undo()
    assert (target / METADATA_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_stale_partial_directories_are_removed(fast: Predictor, tmp_path: Path) -> None:
    """Reproduced: an interrupted training left `.NAME.*.partial` directories forever."""
    dead = _dead_pid()
    stale = [
        tmp_path / ".model.x1y2z3ab.partial",  # written by an older tgplus
        tmp_path / f".model.{dead}-abcd1234.partial",  # its process has died
        tmp_path / f".model.{dead}-efgh5678.previous",
    ]
    live = tmp_path / f".model.{os.getpid()}-ijkl9012.partial"  # still being written
    unrelated = [tmp_path / ".other.x1y2z3ab.partial", tmp_path / ".model.x1y2z3ab.partial.txt"]
    for directory in [*stale, live]:
        directory.mkdir()
        (directory / ARRAYS_FILE).write_bytes(b"half a model")
    for path in unrelated:
        path.mkdir()
    save_predictor(fast, tmp_path / "model")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"model", live.name, *(p.name for p in unrelated)}


def test_a_model_whose_replacement_died_midway_is_found_not_deleted(
    fast: Predictor, tmp_path: Path
) -> None:
    """Killed between the two renames: the old model is the only copy; keep it and say where."""
    aside = tmp_path / f".model.{_dead_pid()}-abcd1234.previous"
    save_predictor(fast, aside)
    with pytest.raises(ModelError, match=r"the previous model is at .*\.previous"):
        load_predictor(tmp_path / "model")
    save_predictor(fast, tmp_path / "other")  # another model's save leaves it alone
    assert aside.is_dir()


def _dead_pid() -> int:
    """A process id that no running process has."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1
