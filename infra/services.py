"""What a stack service is: a spec the stack knows how to prepare, start, probe and stop.

The four servers (``infra.backing``) and OmniHub's own processes (``infra.platform``) are
all described by a ``ServiceSpec``; ``infra.stack`` runs any of them the same way.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from infra.config import StackConfig

State = Literal["running", "stopped", "unhealthy"]


class StackError(RuntimeError):
    """A service could not be prepared, started, made healthy or stopped.

    ``log_tail`` holds the last lines of the service log when there is one.
    """

    def __init__(self, service: str, message: str, log_tail: str = "") -> None:
        text = f"{service}: {message}"
        if log_tail:
            text += f"\n--- last lines of the {service} log ---\n{log_tail}"
        super().__init__(text)
        self.service = service
        self.log_tail = log_tail


def _nothing(cfg: StackConfig) -> None:
    return None


def _no_env(cfg: StackConfig) -> Mapping[str, str]:
    return {}


def _no_ports(cfg: StackConfig) -> Sequence[int]:
    return ()


def _unversioned(cfg: StackConfig) -> str:
    return ""


def _always(cfg: StackConfig) -> bool:
    return True


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one long-lived process of the stack.

    Every callable receives the ``StackConfig`` so one spec serves every stack (dev,
    test). The process is started detached (its own session), with stdout and stderr
    appended to ``<state>/logs/<name>.log``, its pid recorded in ``<state>/run/<name>.pid``
    and, on top of the caller's environment, ``cfg.client_env()`` and ``env(cfg)``.

    - ``argv``: the command line.
    - ``endpoint``: what clients connect to, e.g. ``127.0.0.1:9092``; it is also recorded
      with the pid, so a process started with other ports is not mistaken for this one.
    - ``health``: a quick, non-blocking-ish probe (well under a second) that is true
      once the service answers requests.
    - ``ports``: loopback ports it will listen on; ``up`` refuses to start it while
      another process already answers on one of them.
    - ``prepare``: idempotent setup before each start (config files, ``initdb``).
    - ``after_start``: idempotent setup once healthy (create a database).
    - ``user``: the system user to run as, or None for the current one.
    - ``stop_signal``: the graceful-stop signal; SIGKILL follows after ``stop_grace_s``.
    - ``version``: what the process runs (e.g. a hash of its code), recorded with the
      pid; ``up`` restarts a running process recorded with another version. Empty: the
      process is never restarted for it (the servers).
    - ``enabled``: whether this stack runs it at all (the extra Kafka brokers run only
      in a 3-broker stack); ``up`` and ``status`` skip a disabled service.
    """

    name: str
    argv: Callable[[StackConfig], Sequence[str]]
    endpoint: Callable[[StackConfig], str]
    health: Callable[[StackConfig], bool]
    ports: Callable[[StackConfig], Sequence[int]] = _no_ports
    prepare: Callable[[StackConfig], None] = _nothing
    after_start: Callable[[StackConfig], None] = _nothing
    env: Callable[[StackConfig], Mapping[str, str]] = _no_env
    user: Callable[[StackConfig], str | None] = _nothing
    start_timeout_s: float = 60.0
    stop_grace_s: float = 20.0
    stop_signal: signal.Signals = signal.SIGTERM
    version: Callable[[StackConfig], str] = _unversioned
    enabled: Callable[[StackConfig], bool] = _always


@dataclass(frozen=True)
class ServiceStatus:
    """One service as ``up``, ``down`` or ``status`` found or left it."""

    name: str
    state: State
    pid: int | None
    endpoint: str
    detail: str = field(default="", compare=False)

    def line(self) -> str:
        """One human-readable line: name, state, pid, endpoint, detail."""
        pid = str(self.pid) if self.pid is not None else "-"
        return f"{self.name:<13} {self.state:<10} {pid:>8}  {self.endpoint:<40} {self.detail}"
