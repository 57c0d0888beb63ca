"""The command line: help everywhere, JSON for scripts, exit code 2 and one line on bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from tests.fixtures import CRIME, free_port, write_jsonl
from tests.test_data import _bad_files
from tgplus.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *expected: str) -> None:
    assert code == 2
    assert stderr.startswith("error: ")
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in stderr


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [(*prefix, c.name or c.callback.__name__) for c in group.registered_commands]  # type: ignore[union-attr]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        assert sub.name is not None
        found += _commands(sub.typer_instance, (*prefix, sub.name))
    return found


@pytest.mark.parametrize("command", _commands(app), ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    code, stdout, _ = run(*command, "--help")
    assert code == 0
    assert "Example" in stdout


def test_no_option_help_is_eaten_as_rich_markup() -> None:
    # Typer renders help with rich, which takes `[default: ...]` for a style tag and drops it
    # (`--out` once read "Where to write the model ."); defaults go in show_default instead.
    import re

    def options(command: Any) -> Iterator[tuple[str, str]]:
        for param in command.params:
            yield command.name or "", getattr(param, "help", None) or ""
        for sub in getattr(command, "commands", {}).values():
            yield from options(sub)

    eaten = [
        (name, text)
        for name, text in options(typer.main.get_command(app))
        if re.search(r"\[[a-z#/@]", text)
    ]
    assert eaten == []
    code, stdout, _ = run("train", "--help")
    assert code == 0
    assert "data/model)]" in stdout


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tgplus", "--help"], capture_output=True, text=True, check=True
    )
    assert "data" in result.stdout
    assert "train" in result.stdout


# -- data --------------------------------------------------------------------------------------


def test_data_summary_json(top10k: Path, metadata: Path) -> None:
    code, stdout, _ = run("data", "summary", top10k, metadata, "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["rows_read"] == summary["rows_kept"] + sum(summary["rows_skipped"].values())
    assert sum(1 for _ in summary["genres"]) == 20
    assert set(summary["languages"]) == {"en"}


def test_data_summary_table(top10k: Path) -> None:
    code, stdout, _ = run("data", "summary", top10k)
    assert code == 0
    assert "Movies per genre" in stdout
    assert "skipped: language" in stdout


@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "columns", "binary", "zip", "latin1", "quote", "json"]
)
def test_data_summary_bad_files(tmp_path: Path, case: str) -> None:
    path, expected = _bad_files(tmp_path)[case]
    code, _, stderr = run("data", "summary", path)
    assert_one_line_error(code, stderr, expected, str(path))


def test_data_summary_language_all(top10k: Path) -> None:
    code, stdout, _ = run("data", "summary", top10k, "--language", "all", "--json")
    assert code == 0
    assert "language" not in json.loads(stdout)["rows_skipped"]


# -- train -------------------------------------------------------------------------------------


def test_train_then_predict_then_evaluate(small_data: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    code, stdout, _ = run(
        "train",
        "--data",
        small_data,
        "--out",
        model,
        "--json",
        "--validation-share",
        "0.2",  # enough validation movies to calibrate
        "--target-precision",
        "0.5",
        "--confidence-level",
        "0.8",
    )
    assert code == 0, stdout
    assert json.loads(stdout)["metrics"]["movies"] > 0
    saved = json.loads((model / "metadata.json").read_text(encoding="utf-8"))["calibration"]
    assert (saved["target_precision"], saved["confidence_level"]) == (0.5, 0.8)

    code, stdout, _ = run("predict", "--model", model, CRIME, "--json", "--top-k", "2")
    assert code == 0
    (prediction,) = json.loads(stdout)
    assert len(prediction["top"]) == 2

    code, stdout, _ = run(
        "evaluate",
        "--model",
        model,
        "--data",
        small_data,
        "--split",
        "test",
        "--json",
        "--compare",
        "majority",
        "--report",
        tmp_path / "report",
    )
    assert code == 0
    metrics = json.loads(stdout)
    for key in ("hit_at_1", "micro_f1", "macro_f1", "precision_at_3", "per_genre"):
        assert key in metrics
    assert metrics["compare"][0]["kind"] == "majority"
    # the baseline abstains by the model's rule, so that the figures compare
    baseline = metrics["compare"][0]["confident"]
    assert (baseline["target_precision"], baseline["confidence_level"]) == (0.5, 0.8)
    assert (tmp_path / "report" / "report.md").is_file()
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "precision of 0.5 is reached with probability 0.8" in report


def test_evaluate_reports_each_source_file(small_data: Path, tmp_path: Path) -> None:
    # a long path: the table must fold the name, not cut the figures to "0.…" (80 columns)
    (tmp_path / "a-streaming-catalogue-with-a-long-name").mkdir()
    other = write_jsonl(
        tmp_path / "a-streaming-catalogue-with-a-long-name" / "other.jsonl",
        [
            {"overview": f"{CRIME} Case {i}.", "genres": ["Crime" if i % 2 else "Comedy"]}
            for i in range(20)
        ],
    )
    model = tmp_path / "m"
    run("train", "--data", small_data, "--data", other, "--kind", "majority", "--out", model)
    code, stdout, _ = run("evaluate", "--model", model, "--split", "all", "--json")
    assert code == 0
    by_source = json.loads(stdout)["by_source"]
    assert set(by_source) == {str(small_data), str(other)}
    assert by_source[str(other)]["movies"] == 20
    # That file only ever says Crime or Comedy, so its movies are judged on those two:
    # the majority model's top among them (Comedy, the commoner) is right half the time.
    assert by_source[str(other)]["hit_at_1"] == 0.5
    code, stdout, _ = run("evaluate", "--model", model, "--split", "all")
    assert "per source file" in stdout
    assert "…" not in stdout  # the file names may fold over lines; the figures stay whole
    assert stdout.count(" 0.500 ") >= 1


def test_evaluate_counts_the_rows_it_skipped(fast_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"overview": CRIME, "genres": ["Crime"]},
            {"overview": "A plot no genre of the taxonomy can name.", "genres": ["Anime"]},
            {"overview": "", "genres": ["Drama"]},
        ],
    )
    code, stdout, _ = run("evaluate", "--model", fast_model, "--data", data, "--json")
    assert code == 0
    assert json.loads(stdout)["rows"] == {
        "read": 3,
        "kept": 1,
        "skipped": {"unknown genre names": 1, "no overview": 1},
    }
    code, stdout, _ = run("evaluate", "--model", fast_model, "--data", data)
    assert "3 rows read, 1 kept, skipped: 1 unknown genre names, 1 no overview" in stdout


def test_train_threshold_folds_says_where_thresholds_are_tuned(
    small_data: Path, metadata: Path, tmp_path: Path
) -> None:
    # ... and where the confidence is learned (the same out-of-source scores), or not
    for folds, expected, confidence in (
        ("3", "out-of-source scores of", "logistic regression"),
        ("0", "validation", "top calibrated score"),
    ):
        model = tmp_path / folds
        code, _, _ = run(
            "train", "--data", small_data, "--data", metadata, "--kind", "majority",
            "--threshold-folds", folds, "--out", model,
        )  # fmt: skip
        assert code == 0
        saved = json.loads((model / "metadata.json").read_text())
        assert saved["thresholds_tuned_on"].startswith(expected)
        assert saved["calibration"]["confidence"]["method"] == confidence


def test_evaluate_split_all_warns_about_training_rows(small_data: Path, tmp_path: Path) -> None:
    run("train", "--data", small_data, "--out", tmp_path / "m")
    code, _, stderr = run("evaluate", "--model", tmp_path / "m", "--split", "all")
    assert code == 0
    assert "optimistic" in stderr
    # --data as the directory holding the training file: the same films, the same note
    code, _, stderr = run(
        "evaluate", "--model", tmp_path / "m", "--data", small_data.parent, "--split", "all"
    )
    assert code == 0
    assert "optimistic" in stderr


def test_evaluate_on_the_training_files_measures_the_test_side_by_default(
    small_data: Path, metadata: Path, tmp_path: Path
) -> None:
    run("train", "--data", small_data, "--out", tmp_path / "m")
    for data in ((), ("--data", small_data.parent)):
        code, stdout, stderr = run("evaluate", "--model", tmp_path / "m", *data, "--json")
        assert code == 0, stderr
        assert json.loads(stdout)["split"] == "test"
        assert "optimistic" not in stderr
    # a file the model never saw is measured whole
    code, stdout, stderr = run("evaluate", "--model", tmp_path / "m", "--data", metadata, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["split"] == "all"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--kind", "huge"), "unknown model kind 'huge'"),
        (("--test-share", "1.5"), "out of range"),
    ],
)
def test_train_bad_options(
    small_data: Path, tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    code, _, stderr = run("train", "--data", small_data, "--out", tmp_path / "m", *args)
    assert_one_line_error(code, stderr, expected)
    assert not (tmp_path / "m").exists()


def test_train_on_no_usable_rows_or_one_genre(tmp_path: Path) -> None:
    empty = write_jsonl(tmp_path / "e.jsonl", [{"overview": " ", "genres": ["Drama"]}])
    code, _, stderr = run("train", "--data", empty, "--out", tmp_path / "m")
    assert_one_line_error(code, stderr, "no usable movies", "1 no overview")
    one = write_jsonl(
        tmp_path / "one.jsonl", [{"overview": f"Plot {i}.", "genres": ["Drama"]} for i in range(30)]
    )
    code, _, stderr = run("train", "--data", one, "--out", tmp_path / "m")
    assert_one_line_error(code, stderr, "needs at least two")


def test_train_says_how_many_rows_it_read_kept_and_skipped(
    small_data: Path, tmp_path: Path
) -> None:
    extra = write_jsonl(
        tmp_path / "extra.jsonl",
        [
            {"overview": "A plot that no genre of the taxonomy can name.", "genres": ["Anime"]},
            {"overview": "", "genres": ["Drama"]},
        ],
    )
    code, stdout, _ = run(
        "train", "--data", small_data, "--data", extra, "--kind", "majority",
        "--out", tmp_path / "m",
    )  # fmt: skip
    assert code == 0
    assert (
        "read 402 rows from 2 files: kept 400, skipped 2 (1 unknown genre names, 1 no overview)"
        in stdout
    )


def test_train_refuses_an_unwritable_out_before_training(small_data: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    code, _, stderr = run("train", "--data", small_data, "--out", a_file / "model")
    assert_one_line_error(
        code, stderr, f"{a_file}: is a file, not a directory", "choose another --out"
    )
    assert "no confidence threshold" not in stderr  # refused before fitting anything
    assert a_file.read_text(encoding="utf-8") == "mine"


def test_an_output_below_a_file_says_so(fast_model: Path, tmp_path: Path) -> None:
    # the operating system's own words were "small.csv: File exists"
    a_file = tmp_path / "small.csv"
    a_file.write_text(f'overview,genres\n"{CRIME}",Crime\n', encoding="utf-8")
    for args in (
        ("predict", "--model", fast_model, "--input", a_file, "--output", a_file / "x.csv"),
        ("evaluate", "--model", fast_model, "--data", a_file, "--report", a_file / "report"),
    ):
        code, _, stderr = run(*args)
        assert_one_line_error(code, stderr, f"{a_file}: is a file, not a directory")


def test_train_model_option_is_a_deprecated_alias_of_kind(small_data: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run(
        "train", "--data", small_data, "--model", "majority", "--out", tmp_path / "m", "--json"
    )
    assert code == 0
    assert json.loads(stdout)["kind"] == "majority"
    assert "deprecated; use --kind" in stderr


def test_train_reads_every_movie_file_under_data(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    (tmp_path / "data" / "catalogues").mkdir(parents=True)
    shutil.copy(small_data, tmp_path / "data" / "catalogues" / "small.jsonl")
    write_jsonl(tmp_path / "data" / "more.jsonl", [{"overview": CRIME, "genres": ["Crime"]}])
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run("train", "--kind", "majority", "--json")
    assert code == 0, stdout
    metadata = json.loads((tmp_path / "data" / "model" / "metadata.json").read_text("utf-8"))
    assert [Path(entry["path"]).name for entry in metadata["data"]] == ["small.jsonl", "more.jsonl"]


def test_mapping_and_taxonomy_errors_name_file_and_line(small_data: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("source,target\nSci-Fi,Space Opera\n", encoding="utf-8")
    code, _, stderr = run("train", "--data", small_data, "--mapping", mapping)
    assert_one_line_error(code, stderr, f"{mapping}: line 2: target 'Space Opera'")
    taxonomy = tmp_path / "genres.txt"
    taxonomy.write_text("Funny\nfunny\n", encoding="utf-8")
    code, _, stderr = run("data", "summary", small_data, "--taxonomy", taxonomy)
    assert_one_line_error(code, stderr, f"{taxonomy}: line 2")


def test_data_summary_lists_genre_names_per_file(netflix: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("sport,Drama\n", encoding="utf-8")
    code, stdout, _ = run("data", "summary", netflix, "--mapping", mapping, "--json")
    assert code == 0
    (file,) = json.loads(stdout)["files"]
    names = {entry["name"]: entry for entry in file["genre_names"]}
    assert names["sport"]["maps_to"] == ["Drama"]
    assert names["documentation"]["maps_to"] == ["Documentary"]
    assert set(file["unmapped_genre_names"]) == {"european", "reality"}
    assert file["rows_skipped"]["show, not a movie"] > 2000
    code, stdout, _ = run("data", "summary", netflix)
    assert code == 0
    assert "Genre names of file 1" in stdout
    assert "european" in stdout
    assert "(nothing)" in stdout


def test_train_without_data_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run("train")
    assert_one_line_error(code, stderr, "tgplus data fetch")


# -- evaluate and predict ----------------------------------------------------------------------


def test_evaluate_or_predict_without_a_model(tmp_path: Path, small_data: Path) -> None:
    code, _, stderr = run("evaluate", "--model", tmp_path / "none", "--data", small_data)
    assert_one_line_error(code, stderr, "no model here")
    code, _, stderr = run("predict", "--model", tmp_path / "none", CRIME)
    assert_one_line_error(code, stderr, "no model here")


def test_evaluate_with_a_corrupt_model(fast_model: Path, tmp_path: Path, small_data: Path) -> None:
    import shutil

    broken = Path(shutil.copytree(fast_model, tmp_path / "broken"))
    (broken / "model.npz").write_bytes(b"garbage")
    code, _, stderr = run("evaluate", "--model", broken, "--data", small_data)
    assert_one_line_error(code, stderr, "checksum mismatch", "model.npz")


def test_evaluate_bad_split_and_compare(fast_model: Path, small_data: Path) -> None:
    code, _, stderr = run("evaluate", "--model", fast_model, "--split", "train")
    assert_one_line_error(code, stderr, "--split 'train'")
    code, _, stderr = run("evaluate", "--model", fast_model, "--compare", "best")
    assert_one_line_error(code, stderr, "unknown model kind 'best'")


@pytest.mark.parametrize("description", ["", "   "])
def test_predict_empty_description(fast_model: Path, description: str) -> None:
    code, _, stderr = run("predict", "--model", fast_model, description)
    assert_one_line_error(code, stderr, "description is empty")


def test_predict_a_catalogue(fast_model: Path, tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(
        "id,title,overview\n1,Heat,A crew of bank robbers.\n2,Blank,\n3,Ghosts,A haunted house.\n",
        encoding="utf-8",
    )
    output = tmp_path / "out.csv"
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", catalogue, "--output", output, "--scores"
    )
    assert code == 0
    assert "scored 2 of 3 rows" in stderr
    assert "1 no text" in stderr
    rows = list(csv.DictReader(output.read_text(encoding="utf-8").splitlines()))
    assert [(r["id"], r["skip_reason"]) for r in rows] == [("1", ""), ("2", "no text"), ("3", "")]
    assert {"predicted_genre", "predicted_genres", "score_Crime", "score_Horror"} <= set(rows[0])

    jsonl = tmp_path / "out.jsonl"
    code, _, _ = run("predict", "--model", fast_model, "--input", catalogue, "--output", jsonl)
    assert code == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["title"] for r in records] == ["Heat", "Blank", "Ghosts"]


# -- the original demo's scripts ---------------------------------------------------------------


def test_training_and_evaluation_scripts_run(small_data: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tgplus" / "training.py"),
            "--data",
            str(small_data),
            "--out",
            str(model),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "tgplus" / "evaluation.py"), "--model", str(model)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "split: test" in result.stdout


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TGPLUS_LOG_LEVEL", "verbose"),
        # an idle connection kept forever: one client could hold every socket
        ("TGPLUS_KEEP_ALIVE_SECONDS", "inf"),
        ("TGPLUS_HEADER_TIMEOUT_SECONDS", "nan"),
        ("TGPLUS_BODY_TIMEOUT_SECONDS", "infinity"),
    ],
)
def test_bad_settings_in_the_environment(
    fast_model: Path, monkeypatch: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    monkeypatch.setenv(setting, value)
    code, _, stderr = run("predict", CRIME)
    assert_one_line_error(code, stderr, setting)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example", "not a JSON list"),
        ('["https://a.example/"]', "origin 1 ('https://a.example/') is not scheme://host[:port]"),
        ('["https://a.example", "b.example"]', "origin 2 ('b.example')"),
        ('{"a": 1}', "Input should be a valid list"),
    ],
)
def test_cors_origins_that_no_browser_sends_are_one_line(
    fast_model: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    """A non-JSON TGPLUS_CORS_ORIGINS once stopped every command with a traceback
    (`tgplus serve` reads the settings the same way, and would start if they passed)."""
    monkeypatch.setenv("TGPLUS_CORS_ORIGINS", value)
    code, _, stderr = run("predict", CRIME)
    assert_one_line_error(code, stderr, "TGPLUS_CORS_ORIGINS: ", expected)


def test_cors_origins_as_browsers_send_them() -> None:
    from tgplus.config import Settings

    origins = ["https://a.example", "http://localhost:3000", "*"]
    assert Settings(cors_origins=json.dumps(origins)).cors_origins == origins
    assert Settings(cors_origins=origins).cors_origins == origins


@pytest.mark.parametrize(
    ("url", "expected"),
    [("mysql://x/y", "mysql is not supported"), ("not a url", "is not a database URL")],
)
def test_serve_refuses_a_database_url_no_database_answers(
    fast_model: Path, tmp_path: Path, url: str, expected: str
) -> None:
    """Such a URL once started the server, whose feedback endpoints then answered 503."""
    env = {
        **os.environ,
        "TGPLUS_API_TOKEN": "editor-token-0123",
        "TGPLUS_DATABASE_URL": url,
        "TGPLUS_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "tgplus", "serve", "--model", str(fast_model)]
    result = subprocess.run(
        [*command, "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result.returncode, result.stderr, "TGPLUS_DATABASE_URL", expected)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use_is_exit_code_2(
    fast_model: Path, tmp_path: Path, workers: str
) -> None:
    """uvicorn's own exit codes were 3 (one worker) and 1 (several)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = [sys.executable, "-m", "tgplus", "serve", "--model", str(fast_model)]
        result = subprocess.run(
            [*command, "--port", port, "--workers", workers],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert "address already in use" in result.stderr.lower()
    assert result.stderr.splitlines()[-1] == (
        f"error: the server could not start on 127.0.0.1:{port} (the line above says why); "
        "choose another --host or --port"
    )
    assert "Traceback" not in result.stderr


def test_unwritable_output_is_one_line(fast_model: Path, tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("overview\nA heist.\n", encoding="utf-8")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", catalogue, "--output", blocker / "out.csv"
    )
    assert_one_line_error(code, stderr, str(blocker))


def test_train_refuses_to_replace_a_file(small_data: Path, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code, _, stderr = run("train", "--data", small_data, "--out", target)
    assert_one_line_error(code, stderr, "is a file")
    assert target.read_text() == "keep me"


def test_predict_refuses_options_of_the_other_mode(fast_model: Path, tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("overview\nA heist.\n", encoding="utf-8")
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", catalogue, "--explain", "--top-k", "5"
    )
    assert_one_line_error(code, stderr, "--top-k, --explain", "--input")
    code, _, stderr = run("predict", "--model", fast_model, "--input", catalogue, "--json")
    assert_one_line_error(code, stderr, "--json applies only to descriptions", "leave it out")
    code, _, stderr = run("predict", "--model", fast_model, CRIME, "--scores")
    assert_one_line_error(code, stderr, "--scores needs --input FILE; without it it does nothing")
    output = tmp_path / "out.csv"
    code, _, stderr = run(
        "predict", "--model", fast_model, CRIME, "--output", output, "--engine", "dask"
    )
    assert_one_line_error(code, stderr, "--output, --engine", "need --input")
    assert not output.exists()
    # an option given at its default value changes nothing, so it is not refused
    code, _, _ = run("predict", "--model", fast_model, CRIME, "--top-k", "3", "--workers", "2")
    assert code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("data", "summary"),
            "Missing argument 'files'. (see python -m tgplus data summary --help)",
        ),
        (("predict", "--chunk-rows", "0", "--input", "x.csv"), "Invalid value for '--chunk-rows'"),
        (("trian",), "No such command 'trian'. Did you mean 'train'?"),
    ],
)
def test_usage_errors_are_one_line_from_the_console_script(
    args: tuple[str, ...], expected: str
) -> None:
    """The entry point, not the test runner's app: click's framed box becomes one line."""
    result = subprocess.run(
        [sys.executable, "-m", "tgplus", *args], capture_output=True, text=True, check=False
    )
    assert_one_line_error(result.returncode, result.stderr, expected)
    assert result.stdout == ""
