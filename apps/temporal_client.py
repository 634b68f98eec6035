"""The one way OmniHub connects to Temporal: every client (API, saga bridge, worker,
benchmarks) gets the same interceptors and the same data converter, which seals
payloads with the run's data key (:mod:`sagas.payload_codec`), so whatever writes to a
workflow's history and whatever reads it agree."""

from __future__ import annotations

from temporalio.client import Client

from omnihub.settings import Settings
from projections.keyring import PgKeyStore
from sagas.payload_codec import RunKeys, SealingCodec, sealing_converter
from sagas.telemetry import client_interceptors


async def connect(settings: Settings, keys: RunKeys | None = None) -> Client:
    """A client for the settings' address and namespace; ``keys`` defaults to the data
    keys in Postgres (a pool of its own, opened on the first payload)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        interceptors=client_interceptors(),
        data_converter=sealing_converter(keys or PgKeyStore(settings)),
    )


async def release(client: Client) -> None:
    """Close what the client's codec opened (its key store's connections)."""
    codec = client.data_converter.payload_codec
    if isinstance(codec, SealingCodec):
        await codec.close()
