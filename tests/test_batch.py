"""Batch scoring of catalogues: streaming in one process, on a Dask cluster, and on a DataFrame.

The real shared files go through every path; tiny synthetic files cover what
they lack (odd ids, truncation, corruption). The Dask tests run a real local
cluster of two worker processes, started once for this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tests.fixtures import CRIME, HORROR
from tests.test_cli import assert_one_line_error, run
from tgplus.batch import Interrupted, score_file, work_directory
from tgplus.catalogue import open_catalogue
from tgplus.errors import DataError, InputError
from tgplus.models import Predictor, load_predictor
from tgplus.scoring import GENRE, GENRES, SKIP_REASON, Columns, score_frame, score_texts


@pytest.fixture(scope="module")
def predictor(fast_model: Path) -> Predictor:
    return load_predictor(fast_model)


def read_any(path: Path) -> list[dict[str, Any]]:
    """Rows of an output file (or directory of Parquet parts) as dicts, in file order."""
    if path.is_dir() or path.suffix == ".parquet":
        return list(pq.read_table(path).to_pylist())
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    options = pa_csv.ConvertOptions(strings_can_be_null=True, column_types={"id": pa.string()})
    rows = pa_csv.read_csv(path, convert_options=options).to_pylist()
    for row in rows:  # CSV holds the genre list as text
        row[GENRES] = row[GENRES].split("|") if row[GENRES] else None
    return list(rows)


def predictions_by_id(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {str(r["id"]): (r[GENRE], r[GENRES], r[SKIP_REASON]) for r in rows}


# -- one process -------------------------------------------------------------------------------


def test_streamed_predictions_equal_the_predictor_row_by_row(
    predictor: Predictor, top10k: Path, tmp_path: Path
) -> None:
    output = tmp_path / "genres.parquet"
    report = score_file(predictor, top10k, output, with_scores=True, chunk_rows=1000)
    rows = read_any(output)
    assert report.rows == len(rows) == 10_000
    assert report.scored + sum(report.skipped.values()) == 10_000
    assert report.skipped == {"no text": 13}
    reader = open_catalogue(top10k)
    (chunk,) = reader.chunks(Columns("overview", "title", ("id",)), 10_000)
    reader.close()
    assert [r["id"] for r in rows] == chunk.kept.column("id").to_pylist()
    usable = [i for i, row in enumerate(rows) if row[SKIP_REASON] is None]
    expected = predictor.predict(
        [str(chunk.texts[i]) for i in usable],
        [str(chunk.titles[i]) for i in usable],  # type: ignore[index]
    )
    for i, prediction in zip(usable, expected, strict=True):
        assert rows[i][GENRE] == prediction.genre
        assert tuple(rows[i][GENRES]) == prediction.genres
        assert rows[i]["score_Drama"] == pytest.approx(prediction.scores["Drama"], abs=1e-6)
    assert not work_directory(output).exists()


def test_the_model_sees_batches_of_bounded_size_with_the_same_results(
    predictor: Predictor, top10k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tgplus.scoring

    table = pa_csv.read_csv(top10k).slice(0, 1500)
    texts, titles = table.column("overview").to_pylist(), table.column("title").to_pylist()
    whole = score_texts(predictor, texts, titles)
    seen: list[int] = []
    scores = predictor.scores

    def counted(descriptions: list[str], row_titles: list[str] | None = None) -> Any:
        seen.append(len(descriptions))
        return scores(descriptions, row_titles)

    monkeypatch.setattr(tgplus.scoring, "MODEL_BATCH", 400)
    monkeypatch.setattr(predictor, "scores", counted)
    batched = score_texts(predictor, texts, titles)
    assert max(seen) == 400
    assert sum(seen) == whole.scored
    assert (batched.genre, batched.genres, batched.skip_reason) == (
        whole.genre,
        whole.genres,
        whole.skip_reason,
    )
    assert batched.scores.tobytes() == whole.scores.tobytes()
    assert batched.confidence.tobytes() == whole.confidence.tobytes()


def test_ids_pass_through_untouched_and_unscorable_rows_stay(
    predictor: Predictor, tmp_path: Path
) -> None:
    source = tmp_path / "catalogue.csv"
    source.write_text(
        "show_id,title,description\n"
        f's1,Heat,"{CRIME}"\n'
        f'tt0075314,,"{HORROR}"\n'
        "0,Blank,\n"
        "007,Placeholder,No overview found.\n"
        f',Untitled,"{CRIME}"\n',
        encoding="utf-8",
    )
    for suffix in (".csv", ".jsonl", ".parquet"):
        output = tmp_path / f"out{suffix}"
        report = score_file(predictor, source, output, keep=["show_id", "title"])
        rows = read_any(output)
        ids = [row["show_id"] for row in rows]
        assert ids == ["s1", "tt0075314", "0", "007", ""] or (
            suffix == ".csv" and ids == ["s1", "tt0075314", "0", "007", None]
        ), suffix
        assert [row[SKIP_REASON] for row in rows] == [None, None, "no text", "no text", None]
        assert rows[0][GENRE] == "Crime"
        assert rows[1][GENRE] == "Horror"
        assert report.describe().startswith(f"scored 3 of 5 rows -> {output}")
        assert "2 no text" in report.describe()


def test_json_lines_ids_and_bad_text_values(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "catalogue.jsonl"
    records = [
        {"id": 42, "overview": CRIME},
        {"id": "tt0075314", "overview": HORROR, "title": "Ghosts"},
        {"id": None, "overview": 17},
        {"id": [1, 2], "overview": None},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    score_file(predictor, source, output)
    rows = read_any(output)
    assert [r["id"] for r in rows] == ["42", "tt0075314", None, "[1, 2]"]
    assert [r[SKIP_REASON] for r in rows] == [None, None, "text is not a string", "no text"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_scores_of_rows_not_scored_are_empty_in_every_format(
    predictor: Predictor, tmp_path: Path, suffix: str
) -> None:
    # JSON Lines has no NaN: an unscored row's scores once crashed the run with a traceback.
    source = tmp_path / "catalogue.csv"
    source.write_text(f'id,overview\ns1,"{CRIME}"\ns2,\n', encoding="utf-8")
    output = tmp_path / f"out{suffix}"
    score_file(predictor, source, output, with_scores=True)
    text = output.read_bytes()
    assert b"nan" not in text.lower()
    rows = read_any(output)
    unscored = rows[1]
    values = (
        list(unscored["scores"].values())
        if suffix == ".jsonl"
        else [v for k, v in unscored.items() if k.startswith("score_")]
    )
    assert unscored[SKIP_REASON] == "no text"
    assert unscored["confidence"] is None
    assert len(values) == len(predictor.genres)
    assert all(v is None for v in values)
    first = rows[0]["scores"]["Crime"] if suffix == ".jsonl" else rows[0]["score_Crime"]
    assert first > 0.5


@pytest.mark.parametrize("source_suffix", [".csv", ".jsonl", ".parquet"])
def test_every_format_in_gives_the_same_genres_out(
    predictor: Predictor, metadata: Path, tmp_path: Path, source_suffix: str
) -> None:
    reference = tmp_path / "reference.parquet"
    score_file(predictor, metadata, reference)
    expected = predictions_by_id(read_any(reference))
    source = metadata
    if source_suffix != ".csv":  # the same rows in another format
        source = tmp_path / f"catalogue{source_suffix}"
        score_file(predictor, metadata, source, keep=["id", "title", "overview"])
    for out_suffix in (".csv", ".jsonl", ".parquet"):
        output = tmp_path / f"out{out_suffix}"
        score_file(predictor, source, output, chunk_rows=700)
        assert predictions_by_id(read_any(output)) == expected, out_suffix


def test_stdout_is_csv_with_a_summary_on_stderr(fast_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "catalogue.csv"
    source.write_text(f'id,overview\ns1,"{CRIME}"\n', encoding="utf-8")
    code, stdout, stderr = run("predict", "--model", fast_model, "--input", source)
    assert code == 0
    assert stdout.splitlines()[0] == "id,predicted_genre,predicted_genres,skip_reason,confidence"
    assert stdout.splitlines()[1].startswith('"s1","Crime"')
    assert "scored 1 of 1 rows -> stdout" in stderr


# -- bad input ---------------------------------------------------------------------------------


def test_wrong_text_column_names_the_columns_it_has(fast_model: Path, top10k: Path) -> None:
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", top10k, "--text-column", "plot"
    )
    assert_one_line_error(code, stderr, "no text column 'plot'", "id, title, genre")


def test_missing_text_column(fast_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "names.parquet"
    pq.write_table(pa.table({"id": ["a"], "name": ["x"]}), source)
    code, _, stderr = run("predict", "--model", fast_model, "--input", source)
    assert_one_line_error(code, stderr, "no text column 'overview' or 'description'", "id, name")


def test_unknown_suffix(fast_model: Path, top10k: Path, tmp_path: Path) -> None:
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", top10k, "--output", tmp_path / "o.xlsx"
    )
    assert_one_line_error(code, stderr, "unknown file type '.xlsx'", ".parquet")


def test_truncated_csv_scores_the_rows_before_and_writes_nothing(
    fast_model: Path, metadata: Path, tmp_path: Path
) -> None:
    data = metadata.read_bytes()
    source = tmp_path / "truncated.csv"
    source.write_bytes(data[: len(data) // 2])
    output = tmp_path / "out.parquet"
    output.write_bytes(b"an older result, kept")
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", source, "--output", output,
        "--chunk-rows", "500",
    )  # fmt: skip
    assert_one_line_error(code, stderr, str(source), "truncated")
    row = int(stderr.split(": row ")[1].split(" ")[0].replace(",", ""))
    assert 1000 < row < 2000
    assert f"{row - 1:,} rows before it were scored" in stderr
    assert output.read_bytes() == b"an older result, kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "truncated.csv"]


def test_unterminated_quote_at_the_end(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "cut.csv"
    source.write_text(f'id,overview\n1,"{CRIME}"\n2,"A story cut sho', encoding="utf-8")
    with pytest.raises(DataError, match=r"cut.csv: row 2 \(line 3\): a quote is never closed"):
        score_file(predictor, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_byte_that_is_not_utf8_names_its_own_row(
    predictor: Predictor, tmp_path: Path, suffix: str
) -> None:
    # Strict decoding failed a whole read-ahead buffer: the error named a row some
    # kilobytes earlier (or "unreadable header" when the bad byte was in the first rows).
    def line(i: int, text: str) -> str:
        if suffix == ".csv":
            return f'{i},"{text}"\n'
        return json.dumps({"id": str(i), "overview": text}) + "\n"

    good = "".join(line(i, f"{CRIME} Case {i}.") for i in range(1, 500))
    bad = line(500, "Cafqq society.").encode("utf-8").replace(b"qq", b"\xe9")
    header = "id,overview\n" if suffix == ".csv" else ""
    for rows_before, body in ((0, bad), (499, (header + good).encode("utf-8") + bad)):
        source = tmp_path / f"catalogue{suffix}"
        source.write_bytes(body if rows_before else header.encode("utf-8") + bad)
        output = tmp_path / "out.csv"
        with pytest.raises(DataError, match=rf"row {rows_before + 1}: not valid UTF-8"):
            score_file(predictor, source, output)
        assert not output.exists()


def test_corrupt_parquet_names_the_row_and_writes_nothing(
    predictor: Predictor, top10k: Path, tmp_path: Path
) -> None:
    source = tmp_path / "catalogue.parquet"
    table = pa_csv.read_csv(top10k).select(["id", "title", "overview"])
    pq.write_table(table, source, row_group_size=2500, compression="zstd")
    metadata = pq.ParquetFile(source).metadata
    third = metadata.row_group(2).column(2)  # the overviews of rows 5,001-7,500
    data = bytearray(source.read_bytes())
    start = third.dictionary_page_offset if third.has_dictionary_page else third.data_page_offset
    middle = start + third.total_compressed_size // 2
    data[middle : middle + 64] = bytes(64)
    source.write_bytes(bytes(data))
    output = tmp_path / "out.csv"
    with pytest.raises(DataError) as raised:
        score_file(predictor, source, output, chunk_rows=2500)
    message = str(raised.value)
    assert f"{source}: row 5,001: unreadable Parquet data" in message
    assert "5,000 rows before it were scored" in message
    assert not output.exists()
    assert not work_directory(output).exists()


def test_not_parquet_at_all(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "fake.parquet"
    source.write_text("id,overview\n1,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"fake\.parquet: not a readable Parquet file"):
        score_file(predictor, source, tmp_path / "out.csv")


def test_output_may_not_replace_the_input(predictor: Predictor, top10k: Path) -> None:
    with pytest.raises(InputError, match="would replace the input"):
        score_file(predictor, top10k, top10k)


# -- resume ------------------------------------------------------------------------------------


def test_resume_continues_without_rescoring_finished_chunks(
    predictor: Predictor, top10k: Path, tmp_path: Path
) -> None:
    output = tmp_path / "genres.csv"
    seen: list[int] = []

    def stop_after_three_chunks(rows: int, done: int, total: int | None) -> None:
        seen.append(rows)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="continue after row 3,000"):
        score_file(predictor, top10k, output, chunk_rows=1000, progress=stop_after_three_chunks)
    assert not output.exists()
    assert len(list(work_directory(output).glob("part-*.output.csv"))) == 3

    with pytest.raises(InputError, match="another input file, model or options"):
        score_file(predictor, top10k, output, chunk_rows=500, resume=True)

    manifest = work_directory(output) / "manifest.json"
    kept = manifest.read_text(encoding="utf-8")
    manifest.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="unfinished run there is unreadable"):
        score_file(predictor, top10k, output, chunk_rows=1000, resume=True)
    manifest.write_text(kept, encoding="utf-8")

    report = score_file(predictor, top10k, output, chunk_rows=1000, resume=True)
    assert report.resumed == 3000
    assert report.rows == 10_000
    straight = tmp_path / "straight.csv"
    score_file(predictor, top10k, straight, chunk_rows=1000)
    assert output.read_bytes() == straight.read_bytes()
    assert not work_directory(output).exists()


def test_resume_needs_an_output_file(fast_model: Path, top10k: Path) -> None:
    code, _, stderr = run("predict", "--model", fast_model, "--input", top10k, "--resume")
    assert_one_line_error(code, stderr, "--resume needs --output")


# -- pandas ------------------------------------------------------------------------------------


def test_score_frame_adds_predictions_to_a_dataframe(
    predictor: Predictor, fast_model: Path, top10k: Path, tmp_path: Path
) -> None:
    frame = pa_csv.read_csv(top10k).to_pandas().head(300)
    scored = score_frame(frame, text="overview", title="title", model=fast_model, scores=True)
    assert list(scored.columns[: len(frame.columns)]) == list(frame.columns)
    assert len(scored) == 300
    assert scored["score_Drama"].dtype == "float32"
    source = tmp_path / "head.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "head.parquet"
    score_file(predictor, source, output)
    expected = read_any(output)
    for got, want in zip(scored.to_dict("records"), expected, strict=True):
        assert (got[GENRE], got[GENRES], got[SKIP_REASON]) == (
            want[GENRE],
            want[GENRES],
            want[SKIP_REASON],
        )


def test_score_frame_with_a_missing_column(predictor: Predictor) -> None:
    import pandas as pd

    with pytest.raises(InputError, match="no text column 'plot'; its columns are: overview"):
        score_frame(pd.DataFrame({"overview": [CRIME]}), text="plot", model=predictor)


# -- Dask --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A real local cluster: two worker processes, one thread each (a few seconds to start)."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: 8787 may be taken
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def catalogue_parts(tmp_path_factory: pytest.TempPathFactory, top10k: Path, metadata: Path) -> Path:
    """Both shared files as a directory of six Parquet parts with unique text ids."""
    parts = tmp_path_factory.mktemp("parts")
    columns = ["id", "title", "overview"]
    tables = [pa_csv.read_csv(path).select(columns) for path in (top10k, metadata)]
    rows = [row for table in tables for row in table.to_pylist()]
    for number, row in enumerate(rows):
        row["id"] = f"r{number}"
    for part in range(6):
        pq.write_table(pa.Table.from_pylist(rows[part::6]), parts / f"part-{part}.parquet")
    return parts


def single_process_reference(predictor: Predictor, parts: Path, tmp_path: Path) -> Path:
    combined = tmp_path / "all.parquet"
    pq.write_table(pq.read_table(parts), combined)
    reference = tmp_path / "reference.parquet"
    score_file(predictor, combined, reference, with_scores=True)
    return reference


def test_dask_gives_the_single_process_genres_on_every_row(
    fast_model: Path,
    predictor: Predictor,
    catalogue_parts: Path,
    dask_scheduler: str,
    tmp_path: Path,
) -> None:
    from distributed import Client

    from tgplus.distributed import worker_loads

    output = tmp_path / "genres"
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", catalogue_parts, "--output", output,
        "--engine", "dask", "--scheduler", dask_scheduler, "--scores",
    )  # fmt: skip
    assert code == 0, stderr
    assert "scored 12,960 of 12,996 rows" in stderr
    assert "36 no text" in stderr
    reference = read_any(single_process_reference(predictor, catalogue_parts, tmp_path))
    rows = read_any(output)
    assert len(rows) == len(reference) == 12_996
    by_id = {row["id"]: row for row in rows}
    for want in reference:
        got = by_id[want["id"]]
        assert (got[GENRE], got[GENRES], got[SKIP_REASON]) == (
            want[GENRE],
            want[GENRES],
            want[SKIP_REASON],
        )
        assert got["score_Comedy"] == want["score_Comedy"] or want[SKIP_REASON]
    # Six partitions on two workers: each worker process loaded the model once.
    with Client(dask_scheduler) as client:
        loads = worker_loads(client)
    assert sorted(sum(counts.values()) for counts in loads.values()) == [1, 1]


def test_dask_reads_csv_and_keeps_text_ids(
    fast_model: Path, dask_scheduler: str, tmp_path: Path
) -> None:
    from tgplus.distributed import score_with_dask

    source = tmp_path / "catalogue.csv"
    source.write_text(
        f'id,title,overview\n007,Heat,"{CRIME}"\ntt1,,\ns3,Ghosts,"{HORROR}"\n', encoding="utf-8"
    )
    report = score_with_dask(fast_model, str(source), tmp_path / "out", scheduler=dask_scheduler)
    rows = read_any(tmp_path / "out")
    assert [(r["id"], r[GENRE], r[SKIP_REASON]) for r in rows] == [
        ("007", "Crime", None),
        ("tt1", None, "no text"),
        ("s3", "Horror", None),
    ]
    assert report.describe().startswith("scored 2 of 3 rows")


def test_dask_bad_text_column_names_the_columns(
    fast_model: Path, catalogue_parts: Path, tmp_path: Path
) -> None:
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", catalogue_parts, "--output",
        tmp_path / "out", "--engine", "dask", "--text-column", "plot",
    )  # fmt: skip
    assert_one_line_error(code, stderr, "no text column 'plot'", "id, title, overview")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["genres.csv", "genres.jsonl"])
def test_dask_refuses_an_output_named_like_a_text_file(
    fast_model: Path, tmp_path: Path, name: str
) -> None:
    """It once wrote a directory of Parquet parts called genres.csv, without a word."""
    source = tmp_path / "catalogue.csv"
    source.write_text(f'id,overview\ns1,"{CRIME}"\n', encoding="utf-8")
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", source, "--output", tmp_path / name,
        "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9",
    )  # fmt: skip
    assert_one_line_error(code, stderr, "writes a directory of Parquet parts", "--engine local")
    assert not (tmp_path / name).exists()


def test_unreachable_scheduler_is_one_line_within_ten_seconds(
    fast_model: Path, catalogue_parts: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", catalogue_parts, "--output",
        tmp_path / "out", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9",
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert_one_line_error(code, stderr, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert not (tmp_path / "out").exists()


def test_dask_starts_its_own_local_cluster(fast_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "catalogue.jsonl"
    source.write_text(json.dumps({"id": 7, "overview": CRIME}) + "\n", encoding="utf-8")
    code, _, stderr = run(
        "predict", "--model", fast_model, "--input", source, "--output", tmp_path / "out",
        "--engine", "dask", "--workers", "1",
    )  # fmt: skip
    assert code == 0, stderr
    assert read_any(tmp_path / "out")[0]["id"] == "7"


def test_csv_blocks_give_every_worker_several(tmp_path: Path) -> None:
    from tgplus.distributed import CSV_BLOCK, MIN_CSV_BLOCK, csv_block_size

    source = tmp_path / "catalogue.csv"
    with source.open("wb") as stream:
        stream.truncate(40 * 2**20)  # sparse: only the size matters
    assert csv_block_size(str(source), threads=2) == 5 * 2**20  # 8 blocks, 4 per worker
    assert csv_block_size(str(source), threads=64) == MIN_CSV_BLOCK
    with source.open("wb") as stream:
        stream.truncate(2**30)
    assert csv_block_size(str(source), threads=2) == CSV_BLOCK  # bounded memory per task


def test_the_local_cluster_skips_the_profiler_and_keeps_malloc_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    import dask

    from tgplus.distributed import dask_client

    def settings() -> tuple[Any, str | None]:
        return (
            dask.config.get("distributed.worker.profile.enabled"),
            os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        )

    # Dask's nannies copy their spawn variables into the parent's environment, so the
    # module's cluster has left MALLOC_TRIM_THRESHOLD_ here; a `tgplus` process has none.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with dask_client(None, workers=1) as client:
        assert list(client.run(settings).values()) == [(False, None)]
    assert dask.config.get("distributed.worker.profile.enabled")  # only for that cluster


def test_the_readme_recipe_for_dask_users(
    fast_model: Path, predictor: Predictor, catalogue_parts: Path, dask_scheduler: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    import dask.dataframe as dd
    from distributed import Client

    import tgplus
    from tgplus.scoring import parquet_schema

    with Client(dask_scheduler):
        frame = dd.read_parquet(catalogue_parts)
        meta = tgplus.score_frame(frame._meta, model=fast_model)
        scored = frame.map_partitions(tgplus.score_frame, model=fast_model, meta=meta)
        scored.to_parquet(tmp_path / "genres", write_index=False, schema=parquet_schema(meta))
    rows = read_any(tmp_path / "genres")
    reference = read_any(single_process_reference(predictor, catalogue_parts, tmp_path))
    assert predictions_by_id(rows) == predictions_by_id(reference)


def test_a_worker_that_dies_mid_run_is_replaced_and_the_output_is_complete(
    fast_model: Path, catalogue_parts: Path, dask_scheduler: str, tmp_path: Path
) -> None:
    """Runs last in this module: it kills one of the shared cluster's workers."""
    import os
    import signal
    import threading

    from distributed import Client

    from tgplus.distributed import score_with_dask

    parts = tmp_path / "parts"  # more, smaller partitions: the run lasts long enough to interrupt
    parts.mkdir()
    table = pq.read_table(catalogue_parts)
    for number, start in enumerate(range(0, table.num_rows, 500)):
        pq.write_table(table.slice(start, 500), parts / f"part-{number:03d}.parquet")
    results: list[Any] = []
    run_in_background = threading.Thread(
        target=lambda: results.append(
            score_with_dask(fast_model, str(parts), tmp_path / "out", scheduler=dask_scheduler)
        )
    )
    with Client(dask_scheduler) as client:
        before = set(client.scheduler_info()["workers"])
        run_in_background.start()
        deadline = time.monotonic() + 60
        while not any(client.processing().values()):
            assert time.monotonic() < deadline, "no task ever started"
            time.sleep(0.05)
        victim = next(worker for worker, tasks in client.processing().items() if tasks)
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        run_in_background.join(timeout=120)
        assert victim not in set(client.scheduler_info()["workers"])
        assert before != set(client.scheduler_info()["workers"])
    assert results, "the run did not finish"
    assert results[0].rows == 12_996
    assert len({row["id"] for row in read_any(tmp_path / "out")}) == 12_996
