"""Training: thresholds from validation, metrics from test, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import CRIME, HORROR, write_jsonl
from tgplus.data import SplitSettings
from tgplus.errors import DataError, ModelError
from tgplus.metrics import decide, genre_metrics, tune_thresholds
from tgplus.models import load_predictor
from tgplus.training import train


def test_train_saves_a_loadable_model_with_tuned_thresholds(
    small_data: Path, tmp_path: Path
) -> None:
    result = train([small_data], kind="fast", out=tmp_path / "m")
    loaded = load_predictor(tmp_path / "m")
    assert loaded.genres == result.predictor.genres
    assert not np.allclose(loaded.thresholds, 0.5)  # tuned on the validation side
    rows = loaded.metadata["rows"]
    assert rows["train"] + rows["validation"] + rows["test"] == rows["kept"]
    assert result.metrics["movies"] == rows["test"]


def test_without_validation_thresholds_stay_at_one_half(small_data: Path) -> None:
    result = train([small_data], split=SplitSettings(test_share=0.1, validation_share=0.0))
    assert np.allclose(result.predictor.thresholds, 0.5)
    assert result.predictor.metadata["thresholds_tuned_on"].startswith("none")


def test_training_never_sees_test_movies(small_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tgplus.data import load_movies, split_by_key
    from tgplus.models.lexical import FastModel

    seen: list[str] = []
    original = FastModel.fit

    def spy(self: FastModel, texts: list[str], *args: object) -> FastModel:
        seen.extend(texts)
        return original(self, texts, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FastModel, "fit", spy)
    train([small_data])
    split = split_by_key(load_movies([small_data]).movies, SplitSettings(0.1, 0.1))
    assert not {m.text for m in split.test + split.validation} & set(seen)


def test_no_usable_rows_is_a_data_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "empty.jsonl", [{"overview": "", "genres": ["Drama"]}])
    with pytest.raises(DataError, match="no usable movies to train on"):
        train([path])


def test_a_single_genre_is_a_model_error(tmp_path: Path) -> None:
    records: list[dict[str, object]] = [
        {"overview": f"Plot number {i}.", "genres": ["Drama"]} for i in range(50)
    ]
    path = write_jsonl(tmp_path / "drama.jsonl", records)
    with pytest.raises(ModelError, match="needs at least two"):
        train([path])


def test_unknown_kind_is_a_model_error(small_data: Path) -> None:
    with pytest.raises(ModelError, match="unknown model kind 'huge'"):
        train([small_data], kind="huge")


def test_interrupted_training_keeps_the_previous_model(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tgplus.models.lexical import FastModel

    target = tmp_path / "model"
    train([small_data], out=target)
    before = json.loads((target / "metadata.json").read_text())["trained_at"]

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(FastModel, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train([small_data], out=target)
    assert json.loads((target / "metadata.json").read_text())["trained_at"] == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# -- metrics -----------------------------------------------------------------------------------


def test_thresholds_maximise_each_genres_f1() -> None:
    scores = np.array([[0.9, 0.2], [0.625, 0.3], [0.375, 0.75], [0.125, 0.875]], dtype=np.float32)
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    thresholds = tune_thresholds(scores, labels)
    # Every threshold in (0.375, 0.625] gives genre 0 a perfect F1, every one in
    # (0.3, 0.75] genre 1; ties go to the highest on the grid.
    assert thresholds.tolist() == pytest.approx([0.62, 0.75])
    none = tune_thresholds(scores, np.zeros_like(labels))
    assert np.allclose(none, 0.5)


def test_metrics_on_a_hand_checked_case() -> None:
    genres = ["Crime", "Drama", "Horror"]
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.7, 0.6], [0.3, 0.2, 0.1]], dtype=np.float32)
    truth = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    decided = decide(scores, np.array([0.5, 0.5, 0.5], dtype=np.float32))
    metrics = genre_metrics(scores, decided, truth, genres)
    assert metrics["hit_at_1"] == pytest.approx(1 / 3, abs=1e-4)  # only the first movie
    # decided: {Crime, Drama}, {Drama, Horror}, {Crime (top, nothing above)}
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (5 + 4), abs=1e-4)  # 3 hits, 5 said, 4 true
    assert metrics["per_genre"]["Horror"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(0.6667, abs=1e-4),
        "support": 2,
    }


# -- too little to learn from: a ModelError in words, never a scikit-learn traceback ------------


@pytest.mark.parametrize("rows", [1, 2, 6])
def test_a_tiny_file_is_a_model_error(top10k: Path, tmp_path: Path, rows: int) -> None:
    """Reproduced: 1- or 2-row files ended in scikit-learn's traceback (exit 1)."""
    from tgplus.data import load_movies

    movies = load_movies([top10k]).movies[:rows]
    records: list[dict[str, object]] = [
        {"id": m.id, "title": m.title, "overview": m.overview, "genres": list(m.genres)}
        for m in movies
    ]
    path = write_jsonl(tmp_path / "tiny.jsonl", records)
    with pytest.raises(ModelError, match=f"{rows} distinct description"):
        train([path], split=SplitSettings(test_share=0.0, validation_share=0.0))


def test_copies_of_one_movie_are_a_model_error(tmp_path: Path) -> None:
    """Reproduced: 500 copies of one row: 'max_df corresponds to < documents than min_df'."""
    records: list[dict[str, object]] = [
        {"id": str(i), "title": f"Copy {i}", "overview": CRIME, "genres": ["Crime", "Drama"]}
        for i in range(500)
    ]
    path = write_jsonl(tmp_path / "copies.jsonl", records)
    with pytest.raises(ModelError, match="distinct description"):
        train([path], split=SplitSettings(test_share=0.0, validation_share=0.0))


def test_a_genre_every_movie_has_is_a_model_error(tmp_path: Path) -> None:
    records: list[dict[str, object]] = [
        {"overview": f"{CRIME} Case number {i}.", "genres": ["Drama", ["Crime", "Comedy"][i % 2]]}
        for i in range(60)
    ]
    path = write_jsonl(tmp_path / "drama.jsonl", records)
    with pytest.raises(ModelError, match="every training movie is Drama"):
        train([path], split=SplitSettings(test_share=0.0, validation_share=0.0))


def test_the_cli_says_so_without_a_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tgplus.cli import app

    path = write_jsonl(
        tmp_path / "two.jsonl",
        [{"overview": CRIME, "genres": ["Crime"]}, {"overview": HORROR, "genres": ["Horror"]}],
    )
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "error:" in result.output


# -- thresholds tuned where validation looks like deployment: catalogues the model never saw --


def test_each_file_is_scored_by_a_model_that_never_saw_it(metadata: Path, netflix: Path) -> None:
    from tgplus.data import load_movies
    from tgplus.metrics import known_matrix
    from tgplus.training import make_model, out_of_source_scores, training_genres

    movies = load_movies([metadata, netflix]).movies
    genres = training_genres(movies)
    known = known_matrix(movies, genres)
    crossed = out_of_source_scores(make_model("majority"), movies, genres, known)
    assert crossed is not None
    assert "2 folds by source file" in crossed.description
    drama = genres.index("Drama")
    for file in (metadata, netflix):
        scored = [i for i, m in enumerate(movies) if m.source == str(file)]
        # majority scores every text with the genre rates of the movies it was fitted on:
        # here, the movies that `file` does not hold (a film in both files is in neither).
        unseen = [m for m in movies if str(file) not in (m.sources or (m.source,))]
        rate = np.mean(["Drama" in m.genres for m in unseen])
        assert len(scored) > 1000
        assert np.allclose(crossed.scores[scored, drama], rate)
    # Adventure: JustWatch cannot name it, and the model fitted without the TMDB file never
    # saw one, so no cell of either file can judge its threshold.
    assert not crossed.known[:, genres.index("Adventure")].any()


def test_a_genre_no_fold_can_judge_keeps_its_validation_threshold(
    metadata: Path, netflix: Path
) -> None:
    from tgplus.data import load_movies, split_by_key
    from tgplus.metrics import known_matrix, label_matrix
    from tgplus.training import fit_predictor, make_model

    parts = split_by_key(load_movies([metadata, netflix]).movies, SplitSettings(0.0, 0.2))
    predictor = fit_predictor(make_model("majority"), parts.train, parts.validation)
    genres = list(predictor.genres)
    tuned_on = predictor.metadata["thresholds_tuned_on"]
    assert tuned_on.startswith("out-of-source scores of")
    assert "validation for Adventure" in tuned_on
    raw = predictor.model.predict_proba([m.text for m in parts.validation])
    on_validation = tune_thresholds(
        predictor.calibrated(raw),
        label_matrix(parts.validation, genres),
        known=known_matrix(parts.validation, genres),
    )
    adventure = genres.index("Adventure")
    assert predictor.thresholds[adventure] == on_validation[adventure]


def test_one_file_or_no_folds_tunes_thresholds_on_validation(small_data: Path) -> None:
    assert train([small_data]).predictor.metadata["thresholds_tuned_on"] == "validation"


def test_source_folds_put_every_file_in_one_group_of_about_equal_size() -> None:
    from tgplus.data import Movie
    from tgplus.training import source_folds

    sizes = {"a.csv": 50, "b.csv": 30, "c.csv": 20, "d.csv": 20, "e.csv": 5}
    movies = [
        Movie(None, f"{name} {i}", "Plot.", ("Drama",), "en", name)
        for name, size in sizes.items()
        for i in range(size)
    ]
    groups = source_folds(movies, 3)
    assert sorted(f for g in groups for f in g) == sorted(sizes)
    # largest first into the smallest group: a | b, e | c, d
    assert sorted(sum(sizes[f] for f in g) for g in groups) == [35, 40, 50]
    assert len(source_folds(movies[:50], 3)) == 1  # one file: nothing to hold out


def test_a_kind_slow_to_refit_tunes_thresholds_on_validation(
    metadata: Path, netflix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`accurate` fine-tunes MiniLM (minutes): out-of-source folds would do it three more times."""
    from tgplus.data import load_movies, split_by_key
    from tgplus.models.accurate import AccurateModel
    from tgplus.models.majority import MajorityModel
    from tgplus.training import fit_predictor, make_model

    assert not AccurateModel.refits_cheaply
    monkeypatch.setattr(MajorityModel, "refits_cheaply", False)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("refitted a kind that is slow to refit")

    monkeypatch.setattr("tgplus.training.out_of_source_scores", never)
    parts = split_by_key(load_movies([metadata, netflix]).movies, SplitSettings(0.0, 0.2))
    predictor = fit_predictor(make_model("majority"), parts.train, parts.validation)
    assert predictor.metadata["thresholds_tuned_on"] == "validation"


def test_an_embedding_kind_without_the_extra_fails_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without_sentence_transformers(name: str, *args: object) -> object:
        return None if name == "sentence_transformers" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_sentence_transformers)
    with pytest.raises(ModelError, match=r"pip install 'tgplus\[embeddings\]'"):
        # the data file does not exist: the missing extra is said first, before reading it
        train([tmp_path / "not-read.csv"], kind="accurate")
