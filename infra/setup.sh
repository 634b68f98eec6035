#!/usr/bin/env bash
# Prepare a fresh machine (Debian 12, Python 3.11, Java 17, Maven) for `omnihub stack up`.
# Idempotent and quiet: each step is skipped when already done. Safe to run as root and
# non-interactively (CI). Usage: infra/setup.sh   (env: PYTHON=python3.11)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
KAFKA_DIR="$ROOT/infra/kafka"
LIB_DIR="$KAFKA_DIR/target/lib"
PYTHON="${PYTHON:-python3.11}"

say() { printf '  %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# Run a command with its output kept in a log that is shown only when it fails.
quietly() {
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root for: $* (run as root or install sudo)"
    fi
}

# apt-get as root, waiting (up to 10 min) for another apt or dpkg on the machine to let go
# of its lock instead of failing at once.
apt_get() { as_root apt-get -o DPkg::Lock::Timeout=600 "$@"; }

python_env() {
    local stamp="$VENV/.omnihub-pyproject.sha256" want
    want="$(hash_of "$ROOT/pyproject.toml")"
    if [ ! -x "$VENV/bin/python" ]; then
        need "$PYTHON" "install Python 3.11 or set PYTHON=/path/to/python3.11"
        say "creating $VENV"
        quietly "$PYTHON" -m venv "$VENV"
    fi
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "python packages: up to date"
        return
    fi
    say "installing python packages (pip install -e '.[dev]')"
    quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$ROOT[dev]"
    echo "$want" >"$stamp"
}

plan_cache_onnx() {
    # The plan cache embeds on ONNX Runtime: export the wheel's MiniLM once (offline,
    # into ~/.cache/omnihub); a no-op when the export for these weights exists.
    quietly "$VENV/bin/omnihub" plan-cache export-onnx
    say "plan cache ONNX model: ready"
}

redis() {
    if command -v redis-server >/dev/null 2>&1; then
        say "redis-server: present"
        return
    fi
    say "installing redis-server (apt)"
    export DEBIAN_FRONTEND=noninteractive
    quietly apt_get update -q
    quietly apt_get install -y -q --no-install-recommends redis-server
    # The package may start a system-wide redis on 6379; the stack runs its own there.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q redis-server 2>/dev/null; then
        as_root systemctl disable --now -q redis-server || true
    elif [ -x /etc/init.d/redis-server ]; then
        as_root /etc/init.d/redis-server stop >/dev/null 2>&1 || true
        as_root update-rc.d redis-server disable >/dev/null 2>&1 || true
    fi
}

kafka_jars() {
    local stamp="$LIB_DIR/.omnihub-pom.sha256" want
    want="$(hash_of "$KAFKA_DIR/pom.xml")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null; then
        say "kafka jars: up to date"
        return
    fi
    need java "install a Java 17 runtime (apt-get install openjdk-17-jre-headless)"
    need mvn "install Maven (apt-get install maven)"
    say "fetching kafka jars (mvn dependency:copy-dependencies)"
    # Start clean: copy-dependencies never removes jars a pom change made obsolete.
    rm -rf "$LIB_DIR"
    quietly mvn -q -B -f "$KAFKA_DIR/pom.xml" dependency:copy-dependencies
    echo "$want" >"$stamp"
}

# Prometheus' promtool for the alert-rule tests (tests/unit/test_observability.py): a Go
# program that no apt, PyPI or npm package ships, built from the Go module proxy. The
# version is pinned in infra/observability/promtool.py.
promtool() {
    local version tools="$ROOT/build/tools"
    version="$(sed -n 's/^PROMTOOL_VERSION = "\(v[0-9.]*\)".*/\1/p' "$ROOT/infra/observability/promtool.py")"
    if [ -x "$tools/promtool" ] && [ "$(cat "$tools/.promtool-version" 2>/dev/null)" = "$version" ]; then
        say "promtool: up to date"
        return
    fi
    local go
    go="$(command -v go || echo /usr/local/go/bin/go)"  # Go's own installer puts it there
    if [ ! -x "$go" ]; then
        say "promtool: skipped, no Go toolchain (the alert-rule tests will say so)"
        return
    fi
    say "building promtool $version (go install; minutes the first time)"
    mkdir -p "$tools"
    quietly env GOBIN="$tools" "$go" install "github.com/prometheus/prometheus/cmd/promtool@$version"
    echo "$version" >"$tools/.promtool-version"
}

contracts_node() {
    local dir="$ROOT/contracts" stamp="$ROOT/contracts/node_modules/.omnihub-lock.sha256" want
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        say "installing nodejs and npm (apt)"
        export DEBIAN_FRONTEND=noninteractive
        quietly apt_get update -q
        quietly apt_get install -y -q --no-install-recommends nodejs npm
    fi
    want="$(hash_of "$dir/package-lock.json")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "contract tools (solc, hardhat): up to date"
        return
    fi
    say "installing contract tools (npm ci in contracts/)"
    quietly npm ci --prefix "$dir" --no-audit --no-fund
    echo "$want" >"$stamp"
}

browser_tools() {
    # The dashboard's browser tests (tests/browser): Debian's chromium driven by
    # Playwright, and axe-core from npm for the accessibility checks.
    local dir="$ROOT/tests/browser" stamp="$ROOT/tests/browser/node_modules/.omnihub-lock.sha256" want
    if command -v chromium >/dev/null 2>&1; then
        say "chromium: present"
    else
        say "installing chromium (apt)"
        export DEBIAN_FRONTEND=noninteractive
        quietly apt_get update -q
        quietly apt_get install -y -q --no-install-recommends chromium
    fi
    want="$(hash_of "$dir/package-lock.json")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "axe-core: up to date"
        return
    fi
    say "installing axe-core (npm ci in tests/browser/)"
    quietly npm ci --prefix "$dir" --no-audit --no-fund
    echo "$want" >"$stamp"
}

load_generator() {
    # The HTTP benchmarks' load generator (bench_ingest.py, bench_pipeline.py). Without
    # it they fall back to httpx, which takes about half of this machine's two cores
    # itself and caps the bare endpoint at ~500/s (wrk: ~9,000/s).
    if command -v wrk >/dev/null 2>&1; then
        say "wrk: present"
        return
    fi
    say "installing wrk (apt)"
    export DEBIAN_FRONTEND=noninteractive
    # Not needed by tests or the stack: a failure here is reported, not fatal.
    if ! { apt_get update -q && apt_get install -y -q --no-install-recommends wrk; } \
        >/dev/null 2>&1; then
        say "wrk: not installed; the benchmarks use httpx instead"
    fi
}

echo "omnihub setup in $ROOT"
python_env
plan_cache_onnx
redis
kafka_jars
promtool
contracts_node
browser_tools
load_generator
echo "done: run '$VENV/bin/omnihub stack up'"
