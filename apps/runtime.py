"""What every process's ``run`` command shares: logging, and stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable


def serve(main: Callable[[asyncio.Event], Awaitable[object]], *, level: int = logging.INFO) -> int:
    """Run ``main(stop)`` until it returns; SIGTERM and SIGINT set ``stop``."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", logging.getLevelName(level)).upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(go())
    return 0
