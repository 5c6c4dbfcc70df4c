#!/usr/bin/env bash
# Start a real FHIR R4 server for the integration tests and load the fixtures into it.
#
#   eval "$(bash .ci/fhir-server.sh)"
#
# sekmet-fhir 0.1.1 (PyPI; FHIR R4 on SQLite) in its own virtualenv (.ci/work/sekmet-venv), on
# 127.0.0.1 and a free port, simulator off, a fresh data folder (removed when the server is
# stopped with `kill $TACRO_CDS_TEST_FHIR_PID`), bearer-token auth with a random test token. Waits (bounded) for /fhir/metadata, loads fhir_fixtures/ with `python -m tacro_dev fixtures
# load`, then prints the `export` lines the tests read (TACRO_CDS_TEST_FHIR_URL / _TOKEN) on stdout.
# Everything else goes to stderr. On any failure: the server is stopped, its log tail shown, exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SEKMET_VERSION=0.1.1
WORK="${TACRO_CDS_CI_WORK:-$PWD/.ci/work}"
VENV="$WORK/sekmet-venv"
WAIT_S="${TACRO_CDS_FHIR_WAIT_S:-180}"  # generous: a cold start on a busy shared machine
log() { echo "fhir-server: $*" >&2; }

if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi

mkdir -p "$WORK"
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('sekmet-fhir') != '$SEKMET_VERSION')" 2>/dev/null; then
    log "installing sekmet-fhir==$SEKMET_VERSION into $VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q "sekmet-fhir==$SEKMET_VERSION" >&2
fi

DATA="$(mktemp -d "${TMPDIR:-/tmp}/tacro-cds-fhir.XXXXXX")"
trap 'rm -rf "$DATA"' EXIT  # until the server's keeper below owns the folder
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TOKEN="$(python3 -c 'import secrets; print("test-" + secrets.token_urlsafe(24))')"
URL="http://127.0.0.1:$PORT/fhir"
mkdir -p "$DATA/data"
# sekmet signs its own outbound SMART assertions with this key (only its JWKS endpoint reads it).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DATA/sekmet_private.pem" 2>/dev/null
cat >"$DATA/settings.yaml" <<EOF
base_url: $URL
host: 127.0.0.1
port: $PORT
data_dir: $DATA/data
own_private_key_path: $DATA/sekmet_private.pem
simulator:
  enabled: false
server_auth:
  types: [bearer]
  tokens: ["$TOKEN"]
EOF

# Run from the data folder so anything sekmet writes relative to its cwd stays there. PID is a small
# keeper shell around sekmet: `kill $PID` (SIGTERM, as .ci/run and docs/development.md do) stops sekmet and
# removes the data folder. A sekmet that ends by itself leaves the folder, its log being the evidence
# (this script shows the log's tail and then removes the folder when that happens before it is done).
(
    set +e
    SEKMET=
    trap 'if [ -n "$SEKMET" ]; then kill "$SEKMET" 2>/dev/null; wait "$SEKMET"; fi; cd /; rm -rf "$DATA"; exit 0' TERM HUP
    cd "$DATA"
    "$VENV/bin/sekmet" serve -c "$DATA/settings.yaml" >"$DATA/sekmet.log" 2>&1 </dev/null &
    SEKMET=$!
    wait "$SEKMET"
) >/dev/null 2>&1 </dev/null &
PID=$!
trap - EXIT

fail() {
    log "$*"
    log "last lines of $DATA/sekmet.log:"
    tail -n 30 "$DATA/sekmet.log" >&2 || true
    kill "$PID" 2>/dev/null || true
    rm -rf "$DATA"
    exit 1
}

log "started sekmet (pid $PID) on $URL; waiting up to ${WAIT_S}s for /fhir/metadata"
python3 - "$URL/metadata" "$WAIT_S" "$PID" <<'PYEOF' || fail "the FHIR server did not come up"
import http.client, os, sys, time, urllib.request
url, wait_s, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + wait_s
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("sekmet exited")
    try:
        # One probe may take a while on a busy machine; any failure of it only means "not yet".
        with urllib.request.urlopen(url, timeout=max(0.5, min(10.0, deadline - time.monotonic()))) as r:
            if r.status == 200:
                sys.exit(0)
    except (OSError, http.client.HTTPException):
        pass
    time.sleep(0.25)
sys.exit("timed out")
PYEOF

log "loading fhir_fixtures/ with $PY -m tacro_dev fixtures load"
"$PY" -m tacro_dev fixtures load --fhir-server "$URL" --token "$TOKEN" >&2 || fail "loading the fixtures failed"

echo "export TACRO_CDS_TEST_FHIR_URL='$URL'"
echo "export TACRO_CDS_TEST_FHIR_TOKEN='$TOKEN'"
echo "export TACRO_CDS_TEST_FHIR_PID='$PID'"
echo "export TACRO_CDS_TEST_FHIR_LOG='$DATA/sekmet.log'"
