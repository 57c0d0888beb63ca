"""Evaluation: unknown genres count as misses, reports and baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import CRIME, HORROR, write_jsonl
from tgplus.data import Movie
from tgplus.evaluation import compare_baselines, evaluate, write_report
from tgplus.metrics import HEADLINE, measure
from tgplus.models import load_predictor


def _movie(overview: str, *genres: str) -> Movie:
    return Movie(None, "", overview, genres, "en", "test")


def test_genres_the_model_never_saw_count_as_misses(fast_model: Path) -> None:
    predictor = load_predictor(fast_model)
    known = evaluate(predictor, [_movie(CRIME, "Crime"), _movie(HORROR, "Horror")])
    with_unknown = evaluate(
        predictor,
        [_movie(CRIME, "Crime"), _movie(HORROR, "Horror"), _movie(HORROR, "Noir Musical")],
    )
    assert with_unknown.unseen_genres == {"Noir Musical": 1}
    assert with_unknown.metrics["hit_at_1"] < known.metrics["hit_at_1"]
    assert with_unknown.metrics["per_genre"]["Noir Musical"]["recall"] == 0.0
    assert "never learned" in with_unknown.notes[0]


def test_per_source_figures_slice_the_scores_instead_of_scoring_again(
    fast_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = load_predictor(fast_model)
    scored: list[str] = []
    score_texts = predictor.score_texts

    def counting(texts: list[str]) -> Any:
        scored.extend(texts)
        return score_texts(texts)

    monkeypatch.setattr(predictor, "score_texts", counting)
    movies = [
        Movie(None, "", CRIME, ("Crime",), "en", "a.csv"),
        Movie(None, "", HORROR, ("Horror",), "en", "b.csv"),
        Movie(None, "", f"{HORROR} Twice.", ("Comedy",), "en", "b.csv"),
    ]
    evaluation = evaluate(predictor, movies)
    assert len(scored) == len(movies)  # once each, for the whole and every source
    alone = measure(predictor, movies[1:]).metrics
    assert evaluation.by_source["b.csv"] == {
        "movies": 2,
        **{name: alone[name] for name in HEADLINE},
    }
    assert evaluation.by_source["a.csv"]["movies"] == 1


def test_report_has_markdown_and_plots(fast_model: Path, tmp_path: Path) -> None:
    predictor = load_predictor(fast_model)
    evaluation = evaluate(predictor, [_movie(CRIME, "Crime", "Drama"), _movie(HORROR, "Horror")])
    report = write_report([evaluation], tmp_path / "r", title="t", context=["c"])
    text = report.read_text()
    assert "| fast |" in text
    assert "per_genre_f1.png" in text
    assert "reliability.png" in text
    assert predictor.calibration is not None
    never = predictor.calibration.threshold > 1.0  # no threshold shown to reach the target
    assert ("`confident`: never (no threshold" in text) == never
    assert ("is reached with probability 0.9): " in text) == (not never)
    for plot in ("per_genre_f1.png", "reliability.png"):
        assert (tmp_path / "r" / plot).read_bytes().startswith(b"\x89PNG")


def test_an_interrupted_report_leaves_the_previous_files_whole(
    fast_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tgplus.evaluation

    predictor = load_predictor(fast_model)
    evaluation = evaluate(predictor, [_movie(CRIME, "Crime", "Drama"), _movie(HORROR, "Horror")])
    directory = tmp_path / "r"
    write_report([evaluation], directory, title="first", context=["c"])
    before = {path.name: path.read_bytes() for path in directory.iterdir()}

    def savefig_then_die(figure: Any, path: Any, **options: Any) -> None:
        Path(path).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    plt = tgplus.evaluation._pyplot()
    monkeypatch.setattr(plt.Figure, "savefig", savefig_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_report([evaluation], directory, title="second", context=["c"])
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before


def test_baselines_train_on_the_models_own_split(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tgplus.evaluation
    from tgplus.data import SplitSettings
    from tgplus.training import train

    settings = SplitSettings(test_share=0.2, validation_share=0.15)
    result = train([small_data], out=tmp_path / "m", split=settings, languages=None)
    calls: list[dict[str, object]] = []

    def spy(files: list[Path], **options: object) -> object:
        calls.append({"files": files, **options})
        return train(files, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(tgplus.evaluation, "train", spy)
    movies = [_movie(CRIME, "Crime"), _movie(HORROR, "Horror")]
    (majority,) = compare_baselines(result.predictor, ["majority"], movies)
    assert majority.kind == "majority"
    (call,) = calls
    assert call["files"] == [small_data.resolve()]
    assert call["split"] == settings
    assert call["loading"].languages is None  # type: ignore[attr-defined]
    assert call["kind"] == "majority"


def test_baselines_need_the_training_files(small_data: Path, tmp_path: Path) -> None:
    from tgplus.errors import DataError
    from tgplus.training import train

    copy = write_jsonl(tmp_path / "copy.jsonl", [])
    copy.write_bytes(small_data.read_bytes())
    result = train([copy])
    copy.unlink()
    with pytest.raises(DataError, match="training file"):
        compare_baselines(result.predictor, ["majority"], [_movie(CRIME, "Crime")])


def test_the_report_ranks_movies_by_the_served_confidence(
    fast_model: Path, top10k: Path, metadata: Path, tmp_path: Path
) -> None:
    import numpy as np

    from tgplus.data import DEFAULT_SPLIT, load_movies, split_by_key
    from tgplus.metrics import known_matrix, label_matrix, risk_coverage

    predictor = load_predictor(fast_model)
    assert predictor.calibration is not None
    assert predictor.calibration.confidence is not None
    movies = split_by_key(load_movies([top10k, metadata]).movies, DEFAULT_SPLIT).test[:800]
    trust = measure(predictor, movies).trust
    scores = predictor.score_texts([m.text for m in movies])
    truth = label_matrix(movies, predictor.genres)
    ranked = np.where(known_matrix(movies, predictor.genres), scores, -np.inf)
    served = predictor.confidences(scores)
    assert trust["risk_coverage"] == risk_coverage(ranked, truth, confidence=served)
    assert trust["risk_coverage"] != risk_coverage(ranked, truth)  # not the top score
    worst = trust["confident_mistakes"][0]
    movie = next(m for m in movies if m.title == worst["title"])
    assert worst["confidence"] == pytest.approx(
        predictor.predict_one(movie.overview, movie.title).confidence, abs=1e-4
    )
    assert trust["confident"]["confidence"] == "learned"
    report = write_report([evaluate(predictor, movies)], tmp_path / "r", title="t", context=[])
    assert "Confidence: the learned probability that the top genre is right" in report.read_text()
