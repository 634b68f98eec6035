"""``omnihub contracts check|build|deploy``: the membership contract from the command line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from contracts import artifact


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``contracts`` and its subcommands; each sets ``handler`` returning an exit code."""
    parser = subparsers.add_parser("contracts", help="the membership contract (Solidity)")
    sub = parser.add_subparsers(dest="contracts_command", required=True)
    check = sub.add_parser("check", help="recompile and compare with the committed artefacts")
    check.set_defaults(handler=_check)
    build = sub.add_parser("build", help="recompile and rewrite contracts/artifacts/")
    build.set_defaults(handler=_build)
    deploy = sub.add_parser("deploy", help="deploy on a chain unless the record is current")
    deploy.add_argument("--rpc-url", required=True)
    deploy.add_argument("--record", type=Path, required=True, help="deployment record (JSON)")
    deploy.set_defaults(handler=_deploy)


def _check(args: argparse.Namespace) -> int:
    try:
        problems = artifact.differences()
    except artifact.BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"stale: {problem}", file=sys.stderr)
    if problems:
        print("run `omnihub contracts build` and commit contracts/artifacts/", file=sys.stderr)
        return 1
    print("contracts: committed artefacts match the sources")
    return 0


def _build(args: argparse.Namespace) -> int:
    done = subprocess.run(["node", str(artifact.BUILD_SCRIPT)], check=False)
    return done.returncode


def _deploy(args: argparse.Namespace) -> int:
    from contracts.deployment import ensure_deployed  # web3 is heavy: only when needed

    record, deployed = ensure_deployed(args.rpc_url, args.record)
    verb = "deployed" if deployed else "already deployed"
    print(f"{artifact.MEMBERSHIP} {verb} at {record.address} on chain {record.chain_id}")
    return 0
