#!/usr/bin/env bash
# Starts a local Banter cluster for demos and tests: N nodes (default 3) of `banter serve` on
# 127.0.0.1, each on its own port, sharing one PostgreSQL database and the NATS on this machine,
# and stops them all on Ctrl-C (or SIGTERM).
#
#   scripts/cluster.sh                      # 3 nodes on ports 8081, 8082, 8083
#   scripts/cluster.sh --ports 9001,9002    # 2 nodes on these ports
#
# Environment:
#   BANTER_BIN      the banter binary (default: build target/release/banter with cargo)
#   BANTER_STORE    the database (default postgres://root@127.0.0.1:5432/banter_cluster,
#                   created if missing)
#   BANTER_BUS      the NATS server (default nats://127.0.0.1:4222)
#   BANTER_CLUSTER  the cluster's name (default: local)
#   CLUSTER_DIR     where node logs go (default: ./cluster-data)
# PostgreSQL and NATS are started first if they are not running (scripts/services.sh).
# Prints `node K: http://127.0.0.1:PORT` once node K answers /readyz, then `cluster ready`.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ports="8081,8082,8083"
while [[ $# -gt 0 ]]; do
    case "$1" in
    --ports)
        ports="$2"
        shift 2
        ;;
    *)
        echo "usage: $0 [--ports P1,P2,...]" >&2
        exit 2
        ;;
    esac
done
IFS=, read -r -a port_list <<<"$ports"

store="${BANTER_STORE:-postgres://root@127.0.0.1:5432/banter_cluster}"
bus="${BANTER_BUS:-nats://127.0.0.1:4222}"
cluster="${BANTER_CLUSTER:-local}"
dir="${CLUSTER_DIR:-$PWD/cluster-data}"

"$here/services.sh" >&2

if [[ -z "${BANTER_BIN:-}" ]]; then
    (cd "$here/.." && cargo build --release -q -p banter)
    BANTER_BIN="$here/../target/release/banter"
fi

# The database, unless it exists (psql is PostgreSQL's client; the URL's last part is its name).
db="${store##*/}"
db="${db%%\?*}"
admin="${store%/*}/postgres"
if ! psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql "$admin" -qc "CREATE DATABASE \"$db\"" >/dev/null
    echo "created database $db" >&2
fi

mkdir -p "$dir"
pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

for i in "${!port_list[@]}"; do
    port="${port_list[$i]}"
    BANTER_STORE="$store" BANTER_BUS="$bus" BANTER_CLUSTER="$cluster" \
        "$BANTER_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir/node$i" \
        >"$dir/node$i.log" 2>&1 &
    pids+=("$!")
done

for i in "${!port_list[@]}"; do
    port="${port_list[$i]}"
    ready=""
    for ((t = 0; t < 300; t++)); do
        if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            ready=yes
            break
        fi
        kill -0 "${pids[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$ready" ]]; then
        echo "node $i on port $port did not become ready; its log ($dir/node$i.log):" >&2
        tail -n 20 "$dir/node$i.log" >&2
        exit 1
    fi
    echo "node $i: http://127.0.0.1:$port"
done
echo "cluster ready (store $db, bus $bus, cluster $cluster); Ctrl-C stops it"
wait -n "${pids[@]}" || true
echo "a node exited; stopping the others" >&2
