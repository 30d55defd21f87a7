#!/usr/bin/env bash
# Starts the services the tests use, unless they already accept connections, and waits until
# they do: PostgreSQL on 127.0.0.1:5432 (the store's cluster-mode tests, as role `root` on
# database `test`, trust authentication) and NATS with JetStream on 127.0.0.1:4222 (the bus's).
# Installs, if missing, moto (from PyPI), the S3-compatible server the S3 media test starts on a
# port of its own (crates/banter/tests/media_s3.rs, through scripts/s3-test-server.py).
# Fails loudly, saying what it found, when one does not come up in time.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
NATS_HOST=127.0.0.1
NATS_PORT=4222
# How long each service may take to accept connections, in tenths of a second.
WAIT_TENTHS=300

fail() {
    echo "services.sh: $*" >&2
    exit 1
}

# Polls `$@` every 0.1 s until it succeeds or WAIT_TENTHS run out.
wait_for() {
    local i
    for ((i = 0; i < WAIT_TENTHS; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

pg_ready() {
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

nats_ready() {
    # bash's /dev/tcp: no netcat needed.
    (exec 3<>"/dev/tcp/$NATS_HOST/$NATS_PORT") 2>/dev/null
}

echo "== services: PostgreSQL on $PG_HOST:$PG_PORT"
command -v pg_isready >/dev/null || fail "pg_isready not found: install PostgreSQL (apt-get install postgresql)"
if ! pg_ready; then
    [[ -d /etc/postgresql ]] || fail "no PostgreSQL cluster under /etc/postgresql: install PostgreSQL"
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    echo "starting PostgreSQL $version (cluster main)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        fail "pg_ctlcluster $version main start failed (see /var/log/postgresql/)"
    wait_for pg_ready ||
        fail "PostgreSQL $version did not accept connections on $PG_HOST:$PG_PORT within $((WAIT_TENTHS / 10)) s (see /var/log/postgresql/)"
fi
# The tests connect as root to database test; a fresh cluster has neither.
if ! psql -h "$PG_HOST" -p "$PG_PORT" -U root -d test -Atqc 'SELECT 1' >/dev/null 2>&1; then
    echo "creating role root and database test"
    runuser -u postgres -- psql -h "$PG_HOST" -p "$PG_PORT" -Atqc \
        "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END \$\$" ||
        fail "could not create role root"
    runuser -u postgres -- psql -h "$PG_HOST" -p "$PG_PORT" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
        runuser -u postgres -- createdb -h "$PG_HOST" -p "$PG_PORT" -O root test ||
        fail "could not create database test"
    psql -h "$PG_HOST" -p "$PG_PORT" -U root -d test -Atqc 'SELECT 1' >/dev/null ||
        fail "cannot connect as root to database test on $PG_HOST:$PG_PORT (is trust authentication on for 127.0.0.1 in pg_hba.conf?)"
fi
echo "PostgreSQL accepts connections"

echo "== services: NATS on $NATS_HOST:$NATS_PORT"
if ! nats_ready; then
    [[ -x /usr/sbin/nats-server ]] || fail "/usr/sbin/nats-server not found: install it (apt-get install nats-server)"
    mkdir -p /var/lib/nats-server
    echo "starting nats-server with JetStream"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a "$NATS_HOST" -p "$NATS_PORT" -js -sd /var/lib/nats-server -l /var/log/nats-server.log ||
        fail "start-stop-daemon could not start nats-server"
    wait_for nats_ready ||
        fail "nats-server did not accept connections on $NATS_HOST:$NATS_PORT within $((WAIT_TENTHS / 10)) s (see /var/log/nats-server.log)"
fi
echo "NATS accepts connections"

MOTO_VERSION=5.2.5
moto_dir="${XDG_CACHE_HOME:-$HOME/.cache}/banter-tests/moto-$MOTO_VERSION"
echo "== services: moto $MOTO_VERSION (S3-compatible, for the S3 media test) in $moto_dir"
if ! "$moto_dir/bin/python" -c 'import moto.server' 2>/dev/null; then
    command -v python3 >/dev/null || fail "python3 not found: install it (apt-get install python3-venv)"
    rm -rf "$moto_dir"
    python3 -m venv "$moto_dir" || fail "python3 -m venv $moto_dir failed (apt-get install python3-venv)"
    "$moto_dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" ||
        fail "pip could not install moto[server]==$MOTO_VERSION into $moto_dir"
fi
echo "moto is installed"
