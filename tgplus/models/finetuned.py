"""A genre head on all-MiniLM-L6-v2 fine-tuned under it: half of the `accurate` kind.

The recipe, measured by `bench/finetune.py` (README, "How good, how fast"):
a linear head (one logit per genre) is first fitted on the frozen sentence
embeddings, then MiniLM and the head are trained together for one pass over
the training films with the masked binary cross-entropy (a genre a film's
source cannot name is neither a positive nor a negative example: partial
labels). AdamW, learning rate 3e-5 for MiniLM with 6% warm-up and a linear
decay, 1e-3 for the head; batches of 32, at most 128 word pieces, mean
pooling. Fine-tuning lifted the head by 5 to 9 points of hit@1 on catalogues
the model never saw; on frozen embeddings it is below `fast`.

A pass runs at about 16 descriptions a second on 2 CPU cores (20 minutes for
every shared file), so the tuned weights are cached under a hash of the
base encoder, the recipe, the texts, labels and mask: training again on the
same films (another `--target-precision`, say) reuses them. Everything is
seeded, on a forked random state, so the same films give the same weights.
The model saves the tuned MiniLM weights (about 90 MB) with itself; the base
encoder's tokenizer and configuration still come from the installed weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from collections.abc import Sequence
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.errors import ModelError
from tgplus.files import atomic_file
from tgplus.models.base import Labels, ModelState, Scores
from tgplus.models.embeddings import (
    DEFAULT_ENCODER,
    Encoder,
    default_cache_dir,
    load_sentence_transformer,
    progress_bar,
)

log = logging.getLogger(__name__)

RECIPE: dict[str, float | int] = {
    "batch": 32,
    "max_pieces": 128,
    "encoder_learning_rate": 3e-5,
    "head_learning_rate": 1e-3,
    "warm_up": 0.06,
    "weight_decay": 0.01,
    "frozen_head_epochs": 30,
    "frozen_head_learning_rate": 1e-2,
    "seed": 0,
}
"""Changing any of these changes the cache key, so old tuned weights are never reused."""
SCORING_BATCH = 64
PREFIX = "fine_tuned."
"""Arrays of the tuned MiniLM in the model file: `fine_tuned.<parameter name>`."""
HEAD_PREFIX = "fine_tuned_head."


def masked_loss(logits: Any, labels: Any, known: Any) -> Any:
    """Binary cross-entropy over the cells whose genre the film's source can name."""
    import torch

    each = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (each * known).sum() / known.sum().clamp(min=1.0)


def _tensors(*arrays: npt.NDArray[Any]) -> list[Any]:
    import torch

    return [torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in arrays]


def frozen_head(vectors: npt.NDArray[np.float32], labels: Labels, mask: Labels) -> Any:
    """A linear genre head (torch) on fixed sentence vectors, fitted with the masked loss:
    the starting point of fine-tuning."""
    import torch

    generator = torch.Generator().manual_seed(int(RECIPE["seed"]))
    x, y, k = _tensors(vectors, labels, mask)
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    optimiser = torch.optim.AdamW(
        head.parameters(), lr=float(RECIPE["frozen_head_learning_rate"]), weight_decay=1e-4
    )
    for _ in range(int(RECIPE["frozen_head_epochs"])):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 256):
            rows = order[start : start + 256]
            masked_loss(head(x[rows]), y[rows], k[rows]).backward()
            optimiser.step()
            optimiser.zero_grad()
    return head


class FineTunedHead:
    """MiniLM with mean pooling, fine-tuned under a linear genre head."""

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        progress: bool = False,
        cache_dir: Path | None = None,
        use_cache: bool = True,
    ) -> None:
        self.encoder = encoder
        self.progress = progress
        self.cache_dir = cache_dir
        self.use_cache = use_cache

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, texts: Sequence[str], labels: Labels, known: Labels | None) -> FineTunedHead:
        import torch

        mask = np.ones(labels.shape, bool) if known is None else known.astype(bool)
        frozen = Encoder(self.encoder, progress=self.progress, cache_dir=self.cache_dir)
        cached = self._cache_file(frozen.identity, texts, labels, mask)
        if cached is not None and cached.is_file() and self._load_cached(cached, labels.shape[1]):
            log.info("fine-tuned MiniLM weights reused from %s", cached)
            return self
        # Each step below draws from torch's random state (the heads' first weights,
        # dropout), in this order, on a seeded fork: the same films give the same weights.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(RECIPE["seed"]))
            start = frozen_head(frozen.encode(texts), labels, mask)
            self.transformer_, self.tokenizer_ = self._load_base()
            self.head_ = torch.nn.Linear(start.in_features, start.out_features)
            self.head_.load_state_dict(start.state_dict())
            self._tune(texts, labels, mask)
        if cached is not None:
            self._store(cached)
        return self

    def _load_base(self) -> tuple[Any, Any]:
        loaded = load_sentence_transformer(self.encoder)
        return loaded[0].auto_model, loaded.tokenizer

    def _tune(self, texts: Sequence[str], labels: Labels, mask: Labels) -> None:
        import torch

        batch = int(RECIPE["batch"])
        steps = (len(texts) + batch - 1) // batch  # one pass
        warm_up = max(1.0, float(RECIPE["warm_up"]) * steps)
        optimiser = torch.optim.AdamW(
            [
                {
                    "params": self.transformer_.parameters(),
                    "lr": float(RECIPE["encoder_learning_rate"]),
                },
                {"params": self.head_.parameters(), "lr": float(RECIPE["head_learning_rate"])},
            ],
            weight_decay=float(RECIPE["weight_decay"]),
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min(1.0, (step + 1) / warm_up) * max(0.0, 1 - step / steps)
        )
        order = np.random.default_rng(int(RECIPE["seed"])).permutation(len(texts))
        y, k = _tensors(labels[order], mask[order])
        shuffled = [texts[i] for i in order]
        self.transformer_.train()
        started = time.perf_counter()
        with progress_bar(self.progress, len(texts), "fine-tuning MiniLM") as advance:
            for step in range(steps):
                rows = slice(step * batch, (step + 1) * batch)
                batch_texts = shuffled[rows]
                logits = self.head_(self._vectors(batch_texts))
                masked_loss(logits, y[rows], k[rows]).backward()
                optimiser.step()
                schedule.step()
                optimiser.zero_grad()
                advance(len(batch_texts))
        self.transformer_.eval()
        seconds = time.perf_counter() - started
        log.info(
            "fine-tuned MiniLM on %d descriptions in %.0f s (%.1f a second)",
            len(texts),
            seconds,
            len(texts) / max(seconds, 1e-9),
        )

    # -- scoring ----------------------------------------------------------------------------

    def _vectors(self, texts: Sequence[str]) -> Any:
        import torch

        pieces = self.tokenizer_(
            list(texts),
            padding=True,
            truncation=True,
            max_length=int(RECIPE["max_pieces"]),
            return_tensors="pt",
        )
        hidden = self.transformer_(**pieces).last_hidden_state
        weights = pieces["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=1)

    def probabilities(self, texts: Sequence[str]) -> Scores:
        """The head's probability of every genre for every text, shape (len(texts), genres)."""
        import torch

        if not texts:
            return np.zeros((0, self.head_.out_features), np.float32)
        with torch.inference_mode():
            parts = [
                torch.sigmoid(self.head_(self._vectors(texts[i : i + SCORING_BATCH]))).numpy()
                for i in range(0, len(texts), SCORING_BATCH)
            ]
        return np.concatenate(parts).astype(np.float32)

    # -- the cache of tuned weights ---------------------------------------------------------

    def _cache_file(
        self, identity: str, texts: Sequence[str], labels: Labels, mask: Labels
    ) -> Path | None:
        if not self.use_cache:
            return None
        digest = hashlib.sha256()
        described = {"encoder": identity, "recipe": RECIPE, "torch": _torch_version()}
        digest.update(json.dumps(described, sort_keys=True).encode())
        for text in texts:
            digest.update(hashlib.sha256(text.encode("utf-8")).digest())
        digest.update(repr(labels.shape).encode())
        digest.update(np.packbits(labels.astype(bool)).tobytes())
        digest.update(np.packbits(mask).tobytes())
        root = self.cache_dir if self.cache_dir is not None else default_cache_dir()
        return root / "fine-tuned" / f"{digest.hexdigest()[:32]}.npz"

    def _store(self, path: Path) -> None:
        try:
            arrays: dict[str, Any] = self.arrays()
            with atomic_file(path) as partial, partial.open("wb") as stream:
                np.savez(stream, **arrays)
        except OSError as error:  # a cache, not the model: training goes on without it
            log.warning("could not cache the fine-tuned weights at %s: %s", path, error)

    def _load_cached(self, path: Path, genres: int) -> bool:
        try:
            self.transformer_, self.tokenizer_ = self._load_base()
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            self._restore(arrays, genres)
        except (OSError, ValueError, KeyError, ModelError, zipfile.BadZipFile, EOFError) as error:
            log.warning("ignoring unreadable fine-tuned weights %s: %s", path, error)
            return False
        return True

    # -- saving with the model --------------------------------------------------------------

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The tuned MiniLM and head parameters, by name."""
        found = {
            PREFIX + name: value.detach().numpy().copy()
            for name, value in self.transformer_.state_dict().items()
        }
        found.update(
            {
                HEAD_PREFIX + name: value.detach().numpy().copy()
                for name, value in self.head_.state_dict().items()
            }
        )
        return found

    def _restore(self, arrays: dict[str, npt.NDArray[Any]], genres: int) -> None:
        """Put saved parameters into the freshly loaded base encoder and a new head."""
        import torch

        expected = self.transformer_.state_dict()
        tuned = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
        wrong = sorted(set(expected) ^ set(tuned)) or [
            name for name, value in tuned.items() if value.shape != tuple(expected[name].shape)
        ]
        if wrong:
            raise ModelError(
                f"the model's fine-tuned weights do not fit the encoder {self.encoder!r} "
                f"(first difference: {wrong[0]}); retrain the model"
            )
        self.transformer_.load_state_dict({k: torch.from_numpy(v) for k, v in tuned.items()})
        self.transformer_.eval()
        weight = arrays[HEAD_PREFIX + "weight"]
        bias = arrays[HEAD_PREFIX + "bias"]
        dimension = int(self.transformer_.config.hidden_size)
        if weight.shape != (genres, dimension) or bias.shape != (genres,):
            raise ModelError(
                f"the model's fine-tuned head has shape {weight.shape}, expected "
                f"{(genres, dimension)}; retrain the model"
            )
        self.head_ = torch.nn.Linear(dimension, genres)
        self.head_.load_state_dict(
            {"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)}
        )

    def save(self, state: ModelState) -> None:
        state.arrays.update(self.arrays())
        state.settings["fine_tuning"] = self.describe()

    @classmethod
    def load(cls, state: ModelState, genres: int) -> FineTunedHead:
        described = state.settings.get("fine_tuning")
        if not isinstance(described, dict) or "encoder" not in described:
            raise ModelError(
                "this accurate model was saved by an older tgplus (frozen embeddings and "
                "neighbours, before fine-tuning); retrain it"
            )
        head = cls(encoder=str(described["encoder"]))
        head.transformer_, head.tokenizer_ = head._load_base()
        head._restore(state.arrays, genres)
        return head

    def describe(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "recipe": RECIPE}


def _torch_version() -> str:
    try:
        return package_metadata.version("torch")
    except package_metadata.PackageNotFoundError:
        return "not installed"
