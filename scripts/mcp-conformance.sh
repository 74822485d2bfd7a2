#!/usr/bin/env bash
# Run the official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios)
# and the official Python SDK client against exaid's /mcp, and print what passed.
#
# Everything is installed into a scratch folder that is removed afterwards: Node.js 22 (the
# suite needs it; from the npm registry's `node` package when the machine's node is older),
# the suite, and a Python venv with the `mcp` SDK. The suite cannot send a bearer token, so a
# small local proxy (scripts/mcp-conformance/token-proxy.py) adds it.
#
# Not part of `cargo test` or CI (it downloads packages and takes a minute or two).
# Usage: scripts/mcp-conformance.sh   (EXAID=path/to/exaid to test another build)
set -euo pipefail

cd "$(dirname "$0")/.."
here="$(pwd)/scripts/mcp-conformance"
suite_version="0.1.16"
sdk_version="2.3.0"
exaid="${EXAID:-target/release/exaid}"
[ -n "${EXAID:-}" ] || cargo build --release -q -p exaid
scratch="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== installing the suite ${suite_version} (and Node.js 22 if needed) into a scratch folder"
node_major="$(node --version 2>/dev/null | sed 's/^v\([0-9]*\).*/\1/' || echo 0)"
if [ "${node_major:-0}" -lt 22 ]; then
    (cd "$scratch" && npm install --silent --no-audit --no-fund --prefix node22 node@22 >/dev/null)
    export PATH="$scratch/node22/node_modules/.bin:$PATH"
fi
(cd "$scratch" && npm install --silent --no-audit --no-fund --prefix suite \
    "@modelcontextprotocol/conformance@${suite_version}" >/dev/null)

token="conformance-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
ws_port="$(free_port)"; http_port="$(free_port)"; proxy_port="$(free_port)"
cut_port="$(free_port)"
# The suite's fixture tools are on (test only). The offline model takes 2 s and progress comes
# every second, so a call's stream carries an event before its result: the cutting proxy has
# something to cut after.
EXAI_WS_PORT="$ws_port" EXAI_HTTP_PORT="$http_port" EXAI_WS_TOKEN="$token" \
    EXAI_MCP_CONFORMANCE_FIXTURES=true \
    EXAI_OFFLINE_LATENCY_MS=2000 EXAI_WS_PROGRESS_INTERVAL_SECS=1 \
    EXAI_TOKEN_FILE="$scratch/token" "$exaid" >"$scratch/daemon.log" 2>&1 &
pids+=($!)
EXAID_HTTP_PORT="$http_port" EXAID_TOKEN="$token" python3 "$here/token-proxy.py" "$proxy_port" &
pids+=($!)
EXAID_HTTP_PORT="$http_port" EXAID_TOKEN="$token" EXAID_DROP_FIRST_CALL=1 \
    python3 "$here/token-proxy.py" "$cut_port" &
pids+=($!)
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null && break
    sleep 0.1
done

echo "== conformance suite, server scenarios (active suite), through the token proxy"
(cd "$scratch/suite" && npx conformance server --url "http://127.0.0.1:$proxy_port/mcp" \
    -o "$scratch/results") | tee "$scratch/suite.txt" | grep -E '^[✓✗]|^Total' || true

echo "== the official Python SDK (mcp ${sdk_version}): list tools, call chat, survive a cut stream"
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q "mcp==${sdk_version}"
EXAID_TOKEN="$token" "$scratch/venv/bin/python" "$here/python-sdk-check.py" \
    "http://127.0.0.1:$http_port/mcp" "http://127.0.0.1:$cut_port/mcp" \
    "http://127.0.0.1:$http_port/metrics"
