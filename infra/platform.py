"""OmniHub's own processes, run by the local stack after the servers they depend on.

This is the hook for the API, the stream processors and the Temporal worker. Add a
``ServiceSpec`` to ``SERVICES``; ``omnihub stack up`` then starts it after Kafka,
Postgres, Redis and Temporal are healthy (``down`` stops it first), logs to
``<state>/logs/<name>.log`` and hands it ``cfg.client_env()``, so its settings point at
the same stack (dev or test). For example::

    import sys

    from infra.config import HOST
    from infra.probes import tcp_open
    from infra.services import ServiceSpec

    API = ServiceSpec(
        name="api",
        argv=lambda cfg: [sys.executable, "-m", "uvicorn", "api.app:create_app",
                          "--factory", "--host", HOST, "--port", str(cfg.api_port)],
        endpoint=lambda cfg: f"http://{HOST}:{cfg.api_port}",
        health=lambda cfg: tcp_open(cfg.api_port),
        ports=lambda cfg: (cfg.api_port,),
    )
    SERVICES = (API,)

Processes that must not be part of every ``up`` (or tests that need a throwaway service)
can instead call ``infra.stack.register_service(spec)`` at run time.
"""

from __future__ import annotations

import sys

from infra.config import HOST
from infra.probes import tcp_open
from infra.services import ServiceSpec

API = ServiceSpec(
    name="api",
    argv=lambda cfg: [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                      "--host", HOST, "--port", str(cfg.api_port), "--no-access-log"],
    endpoint=lambda cfg: f"http://{HOST}:{cfg.api_port}",
    health=lambda cfg: tcp_open(cfg.api_port),
    ports=lambda cfg: (cfg.api_port,),
)

# Keys and kill-switch projections and the audit chainer (streams/security_processor.py).
# It listens on no port: it is healthy while it runs (the stack tracks its pid).
GATEWAY_PROCESSOR = ServiceSpec(
    name="gateway-processor",
    argv=lambda cfg: [sys.executable, "-m", "streams.security_processor"],
    endpoint=lambda cfg: f"kafka://{HOST}:{cfg.kafka_port}",
    health=lambda cfg: True,
)

# The Temporal worker for AgentWorkflow (sagas/worker.py); more can run side by side.
WORKER = ServiceSpec(
    name="worker",
    argv=lambda cfg: [sys.executable, "-m", "omnihub.cli", "worker"],
    endpoint=lambda cfg: f"temporal://{HOST}:{cfg.temporal_port}",
    health=lambda cfg: True,
)

# Kafka -> Temporal: starts runs from goal_received, signals approvals and cancels.
SAGA_BRIDGE = ServiceSpec(
    name="saga-bridge",
    argv=lambda cfg: [sys.executable, "-m", "omnihub.cli", "saga-bridge", "run"],
    endpoint=lambda cfg: f"kafka://{HOST}:{cfg.kafka_port}",
    health=lambda cfg: True,
)

# The semantic plan cache: folds plan_generated, invalidations and shares into pgvector.
PLAN_CACHE = ServiceSpec(
    name="plan-cache",
    argv=lambda cfg: [sys.executable, "-m", "omnihub.cli", "plan-cache", "run"],
    endpoint=lambda cfg: f"kafka://{HOST}:{cfg.kafka_port}",
    health=lambda cfg: True,
)

# The read models: folds run and audit events into Postgres and Redis (streams/processors).
# Static membership: a restarted projector owns its partitions again without a rebalance.
PROJECTOR = ServiceSpec(
    name="projector",
    argv=lambda cfg: [sys.executable, "-m", "omnihub.cli", "projector", "run",
                      "--instance-id", "projector-1"],
    endpoint=lambda cfg: f"kafka://{HOST}:{cfg.kafka_port}",
    health=lambda cfg: True,
)

SERVICES: tuple[ServiceSpec, ...] = (
    API, GATEWAY_PROCESSOR, WORKER, SAGA_BRIDGE, PLAN_CACHE, PROJECTOR,
)
