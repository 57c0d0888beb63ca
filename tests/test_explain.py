"""Per-word explanations of the fast model: exact, placed at the right characters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import CRIME, HORROR
from tgplus.data import load_movies
from tgplus.models import Predictor, load_predictor
from tgplus.models.explain import TokenWeights
from tgplus.models.lexical import FastModel
from tgplus.models.linear import sigmoid
from tgplus.models.text import TfidfSettings, term_spans, terms

UNICODE = "Cafe\u0301 noir 🎬: a gangster in İstanbul robs the bank 👩‍👩‍👧 ΣΟΦΟΣ"


@pytest.fixture(scope="module")
def fast(fast_model: Path) -> FastModel:
    model = load_predictor(fast_model).model
    assert isinstance(model, FastModel)
    return model


@pytest.fixture(scope="module")
def real_texts(top10k: Path) -> list[str]:
    return [movie.text for movie in load_movies([top10k]).movies[:300]]


def empty_text_score(model: FastModel) -> np.ndarray:
    """The blend's score of a text with no words, as the explanation defines it."""
    scorers = model.scorers_
    assert scorers.static_ is not None
    logits = [
        scorers.logistic_.intercept_,
        scorers.naive_bayes_.intercept_,
        scorers.static_.intercept_ + scorers.static_.reference_,
    ]
    return np.asarray(sum(w * sigmoid(z) for w, z in zip(model.mixing_, logits, strict=True)))


def test_word_weights_add_up_to_the_score_above_an_empty_text(
    fast: FastModel, real_texts: list[str]
) -> None:
    for text in [CRIME, *real_texts[:50]]:
        explained = fast.explain_one(text)
        raw = fast.predict_proba_one(text)
        assert explained.method == "exact"
        assert explained.weights.shape == (len(explained.spans), len(fast.genres_))
        np.testing.assert_allclose(
            explained.baseline + explained.weights.sum(axis=0), raw, atol=1e-5
        )
        # no unknown word pieces in these texts, so the baseline is the empty text's score
        np.testing.assert_allclose(explained.baseline, empty_text_score(fast), atol=2e-4)


def test_crime_words_raise_crime(fast: FastModel) -> None:
    text = "A gangster and a detective fight over a bank robbery in the city."
    explained = fast.explain_one(text)
    crime = fast.genres_.index("Crime")
    best = np.argsort(-explained.weights[:, crime])[:3]
    words = {text[slice(*explained.spans[i])] for i in best}
    assert words <= {"gangster", "detective", "bank", "robbery"}, words


def spans_of(explained: TokenWeights, text: str) -> list[str]:
    return [text[start:end] for start, end in explained.spans]


def test_offsets_count_characters_with_emoji_and_combining_marks(fast: FastModel) -> None:
    explained = fast.explain_one(UNICODE)
    found = spans_of(explained, UNICODE)
    assert "Cafe\u0301" in found  # the accent belongs to its word
    assert {"noir", "gangster", "İstanbul", "robs", "bank", "ΣΟΦΟΣ"} <= set(found)
    start, end = explained.spans[found.index("gangster")]
    assert UNICODE.index("gangster") == start
    assert end == start + len("gangster")
    assert not any("🎬" in word or "👩" in word for word in found)  # unknown pieces: no word


def test_a_text_of_unknown_pieces_has_no_words(fast: FastModel) -> None:
    explained = fast.explain_one("🎬🍿 ✨✨")
    assert explained.spans == []
    assert explained.weights.shape == (0, len(fast.genres_))
    np.testing.assert_allclose(explained.baseline, fast.predict_proba_one("🎬🍿 ✨✨"), atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [
        TfidfSettings(ngram_max=2, stop_words="english"),
        TfidfSettings(ngram_max=3),
        TfidfSettings(analyzer="char_wb", ngram_min=2, ngram_max=4),
    ],
)
def test_term_spans_give_the_terms_in_order_and_their_words(
    settings: TfidfSettings, real_texts: list[str]
) -> None:
    stop_words = settings.resolved_stop_words()
    for text in [*real_texts, UNICODE, "İİ DİŞ"]:
        found = term_spans(text, settings, stop_words)
        assert [term for term, _ in found] == terms(text, settings, stop_words)
        for term, spans in found:
            if settings.analyzer == "word":  # ("İ" lower-cases to two characters)
                words = term.split(" ")
                assert all(w in text[s:e].lower() for w, (s, e) in zip(words, spans, strict=True))


def test_word_piece_spans_give_the_same_pieces_as_encode(
    fast: FastModel, real_texts: list[str]
) -> None:
    assert fast.scorers_.static_ is not None
    tokenizer = fast.scorers_.static_.tokenizer_
    for text in [*real_texts, UNICODE, "naïve\x01 café—DIŞ ﬁn"]:
        spans = tokenizer.words_with_spans(text)
        pieces = [p for word, _, _ in spans for p in tokenizer.pieces_of(word)]
        assert pieces == tokenizer.encode(text)
        assert all(0 <= s < e <= len(text) for _, s, e in spans)


def test_old_models_without_a_static_reference_still_explain(fast_model: Path) -> None:
    predictor: Predictor = load_predictor(fast_model)
    model = predictor.model
    assert isinstance(model, FastModel)
    state = model.get_state()
    del state.arrays["static_reference"]
    rebuilt = FastModel.from_state(state, model.genres_)
    explained = rebuilt.explain_one(CRIME)
    np.testing.assert_allclose(
        explained.baseline + explained.weights.sum(axis=0),
        rebuilt.predict_proba_one(CRIME),
        atol=1e-5,
    )


def texts_scored(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the predictor's model scores from now on, one or many at a time."""
    model = predictor.model
    scored: list[str] = []
    one, many = model.predict_proba_one, model.predict_proba

    def counted_one(text: str) -> np.ndarray:
        scored.append(text)
        return one(text)

    def counted_many(texts: Sequence[str]) -> np.ndarray:
        scored.extend(texts)
        return many(texts)

    monkeypatch.setattr(model, "predict_proba_one", counted_one)
    monkeypatch.setattr(model, "predict_proba", counted_many)
    return scored


def test_explaining_one_description_scores_it_once(
    fast_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = load_predictor(fast_model)
    calls = texts_scored(predictor, monkeypatch)
    explained = predictor.predict_one(CRIME, explain=True)
    assert len(calls) == 1
    # the same words and weights as when the explanation scores the text itself
    monkeypatch.undo()
    words = explained.top[0].explanation
    again = predictor.predict([CRIME], explain=True)[0].top[0].explanation
    assert words
    assert again
    assert [(w.text, w.start, w.end) for w in words] == [(w.text, w.start, w.end) for w in again]
    np.testing.assert_allclose(
        np.array([w.weight for w in words]), np.array([w.weight for w in again]), atol=1e-5
    )


def test_explaining_a_batch_scores_each_description_once(
    fast_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = load_predictor(fast_model)
    scored = texts_scored(predictor, monkeypatch)
    titles = ["Heat", " The Farmhouse "]
    explained = predictor.predict([CRIME, HORROR], titles, explain=True)
    assert len(scored) == 2
    monkeypatch.undo()
    # the same words and weights as when each explanation scores its text itself
    for prediction, description, title in zip(explained, [CRIME, HORROR], titles, strict=True):
        alone = predictor.predict_one(description, title, explain=True)
        assert [entry.genre for entry in prediction.top] == [entry.genre for entry in alone.top]
        for ours, theirs in zip(prediction.top, alone.top, strict=True):
            assert ours.explanation
            assert [(w.text, w.start, w.field) for w in ours.explanation] == [
                (w.text, w.start, w.field) for w in theirs.explanation or ()
            ]
            np.testing.assert_allclose(
                [w.weight for w in ours.explanation],
                [w.weight for w in theirs.explanation or ()],
                atol=1e-5,
            )
