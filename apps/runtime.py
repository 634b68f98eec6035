"""What every process's ``run`` command shares: logging, telemetry, stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from omnihub.logs import setup_logging
from omnihub.metrics import serve_metrics
from omnihub.settings import Settings, get_settings
from omnihub.tracing import setup_tracing


def setup_telemetry(
    process: str,
    settings: Settings,
    *,
    level: int = logging.INFO,
    serve_metrics_port: bool = True,
) -> None:
    """Logging (:mod:`omnihub.logs`), tracing as ``process`` (:mod:`omnihub.tracing`),
    and, unless the process serves them itself, ``/metrics`` on its metrics port."""
    setup_logging(level)
    setup_tracing(process, settings.state_dir)
    if serve_metrics_port:
        serve_metrics()


def serve(
    main: Callable[[asyncio.Event], Awaitable[object]],
    *,
    level: int = logging.INFO,
    process: str | None = None,
) -> int:
    """Run ``main(stop)`` until it returns; SIGTERM and SIGINT set ``stop``. A named
    ``process`` also gets tracing and a metrics port (:func:`setup_telemetry`)."""
    if process is None:
        setup_logging(level)
    else:
        setup_telemetry(process, get_settings(), level=level)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(go())
    return 0
