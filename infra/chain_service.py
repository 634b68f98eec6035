"""The local Ethereum chain of the stack: a Hardhat node from npm, with the membership
contract deployed on it once it answers.

The node runs from ``contracts/node_modules`` (installed by ``infra/setup.sh``) with a
fixed chain id. It keeps no state across restarts, so every start is a fresh chain and
``after_start`` redeploys (``contracts.deployment.ensure_deployed`` notices). The
deployment record, ``<state>/chain/membership.json``, is what ``stack env`` and the
processes read the contract's address from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from infra.config import HOST, StackConfig
from infra.services import ServiceSpec, StackError

CHAIN_ID = 31337
CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
HARDHAT_CLI = CONTRACTS_DIR / "node_modules" / "hardhat" / "internal" / "cli" / "bootstrap.js"
PROBE_TIMEOUT_S = 1.0


def rpc_url(cfg: StackConfig) -> str:
    """The node's JSON-RPC endpoint."""
    return f"http://{HOST}:{cfg.chain_port}"


def record_path(cfg: StackConfig) -> Path:
    """Where the membership contract's deployment is recorded."""
    return cfg.state_dir / "chain" / "membership.json"


def chain_id_of(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> int | None:
    """The chain id a JSON-RPC node answers ``eth_chainId`` with, None if it does not."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"content-type": "application/json"}
    )
    # No proxy: an http_proxy in the environment must not intercept a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def deployment_env(cfg: StackConfig) -> dict[str, str]:
    """``OMNIHUB_MEMBERSHIP_ADDRESS`` (and chain id) once the contract is deployed."""
    try:
        record = json.loads(record_path(cfg).read_text())
        return {
            "OMNIHUB_MEMBERSHIP_ADDRESS": str(record["address"]),
            "OMNIHUB_CHAIN_ID": str(record["chain_id"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def notes(cfg: StackConfig) -> list[str]:
    """Lines for ``stack up``: where the membership contract is, if it is deployed."""
    env = deployment_env(cfg)
    if not env:
        return []
    where = f"{env['OMNIHUB_MEMBERSHIP_ADDRESS']} on chain {env['OMNIHUB_CHAIN_ID']}"
    return [f"{'membership':<13} {'deployed':<10} {'-':>8}  {where:<40} {record_path(cfg)}"]


def _argv(cfg: StackConfig) -> list[str]:
    node = shutil.which("node")
    if node is None or not HARDHAT_CLI.exists():
        raise StackError(
            "chain", "node or contracts/node_modules/hardhat missing: run infra/setup.sh"
        )
    # Hardhat only runs from its project folder (it refuses a "non-local installation").
    return [
        "env", "-C", str(CONTRACTS_DIR),
        node, str(HARDHAT_CLI), "--config", "hardhat.config.cjs",
        "node", "--hostname", HOST, "--port", str(cfg.chain_port),
    ]  # fmt: skip


def _env(cfg: StackConfig) -> Mapping[str, str]:
    return {
        "OMNIHUB_CHAIN_STATE_DIR": str(cfg.state_dir / "chain"),
        "OMNIHUB_CHAIN_ID": str(CHAIN_ID),
        "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true",
    }


def _prepare(cfg: StackConfig) -> None:
    (cfg.state_dir / "chain").mkdir(parents=True, exist_ok=True)


def _config_version(cfg: StackConfig) -> str:
    """A hash of the node's configuration: ``up`` restarts a node started with another one
    (one that mined only on transactions would never give the watcher confirmations)."""
    return hashlib.sha256((CONTRACTS_DIR / "hardhat.config.cjs").read_bytes()).hexdigest()[:16]


def _deploy(cfg: StackConfig) -> None:
    from contracts.deployment import ensure_deployed  # web3 is heavy: only when needed

    try:
        ensure_deployed(rpc_url(cfg), record_path(cfg))
    except Exception as exc:  # any failure here must name the service, with its cause
        raise StackError("chain", f"deploying the membership contract failed: {exc!r}") from exc


CHAIN = ServiceSpec(
    name="chain",
    argv=_argv,
    endpoint=rpc_url,
    health=lambda cfg: chain_id_of(rpc_url(cfg)) == CHAIN_ID,
    ports=lambda cfg: (cfg.chain_port,),
    prepare=_prepare,
    after_start=_deploy,
    env=_env,
    start_timeout_s=60.0,
    stop_grace_s=10.0,
    version=_config_version,
)
