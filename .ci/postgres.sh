#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for the store tests (Debian, run as root).
#
#   eval "$(.ci/postgres.sh)"      # sets TACRO_CDS_TEST_POSTGRES_URL
#   .ci/postgres.sh --stop         # stops it and removes its data
#   .ci/postgres.sh --where        # prints its state directory and first port (no root needed)
#
# Installs Debian's postgresql with apt-get when missing, then runs its own cluster (not the
# package's "main" one) from a state directory under /tmp, listening on 127.0.0.1 only, on the first
# free port from a starting port. Idempotent: a second run finds the running cluster and prints the
# same line. Only the export line goes to stdout; progress goes to stderr.
#
# Each checkout has its own cluster: the state directory is /tmp/tacro-cds-postgres-<hash of the
# checkout's path>, and the port search starts at 55432 + (that hash mod 2000), so two checkouts on
# one machine never share (or stop) each other's cluster. TACRO_CDS_PG_STATE and TACRO_CDS_PG_PORT
# override the directory and the starting port.
set -euo pipefail

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CHECKOUT_HASH="$(printf '%s' "$CHECKOUT" | sha256sum | cut -c1-12)"
STATE="${TACRO_CDS_PG_STATE:-/tmp/tacro-cds-postgres-$CHECKOUT_HASH}"
FIRST_PORT="${TACRO_CDS_PG_PORT:-$((55432 + 16#${CHECKOUT_HASH:0:8} % 2000))}"
DB_NAME=tacro_cds_test
DB_USER=tacro_cds

say() { echo "postgres.sh: $*" >&2; }
as_postgres() { runuser -u postgres -- "$@"; }

if [[ "${1:-}" == "--where" ]]; then
    # Where this checkout's cluster lives (no root needed): "<state directory> <first port tried>".
    echo "$STATE $FIRST_PORT"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    say "must run as root (installs packages, runs the cluster as user postgres)"
    exit 1
fi

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [[ -z "$(pg_bin)" ]]; then
    say "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql >&2
fi
BIN="$(pg_bin)"
DATA="$STATE/data"

if [[ "${1:-}" == "--stop" ]]; then
    if [[ -d "$DATA" ]]; then
        as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
    fi
    rm -rf "$STATE"
    say "stopped and removed $STATE"
    exit 0
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ -d "$DATA" ]] && as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "cluster already running"
else
    mkdir -p "$STATE"
    chown postgres:postgres "$STATE"
    chmod 700 "$STATE"
    if [[ ! -f "$STATE/password" ]]; then
        # A throwaway password for a throwaway cluster; kept so reruns print the same URL.
        head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$STATE/password"
    fi
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        say "initdb in $DATA"
        as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    port="$FIRST_PORT"
    while port_busy "$port"; do
        port=$((port + 1))
        if (( port > FIRST_PORT + 100 )); then say "no free port from $FIRST_PORT"; exit 1; fi
    done
    echo "$port" > "$STATE/port"
    say "starting on 127.0.0.1:$port"
    # fsync off: the data is thrown away after the tests; it only speeds them up.
    as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$STATE/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $STATE -c fsync=off -c full_page_writes=off" \
        start >&2
fi

port="$(cat "$STATE/port")"
for _ in $(seq 1 60); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then break; fi
    sleep 0.5
done
"$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" || { say "server not ready; see $STATE/server.log"; exit 1; }

password="$(cat "$STATE/password")"
psql_admin() { as_postgres "$BIN/psql" -h "$STATE" -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]]; then
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$password'"
fi
if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

echo "export TACRO_CDS_TEST_POSTGRES_URL=postgresql+psycopg://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
