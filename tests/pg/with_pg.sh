#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on loopback and DPO_TEST_PG_URL pointing at it:
#   tests/pg/with_pg.sh ctest --output-on-failure -R project
# The server lives in a temp folder owned by the postgres user (PostgreSQL refuses to run as root), listens on
# 127.0.0.1 and a free port only, trusts local connections for the superuser "dpo", and is stopped and deleted
# when the command ends (whatever its exit status, which is passed through).
# Without PostgreSQL installed (Debian: postgresql), or when DPO_TEST_PG_URL is already set, the command runs
# as is: the PostgreSQL test rows then QSKIP or use the given server. DPO_PG_OWN_SERVER=1 starts a server of
# the command's own even then (a test that stops and restarts it must not disturb the others), and exports
# DPO_TEST_PG_STOP and DPO_TEST_PG_START: shell commands that stop (fast shutdown, connections cut) and
# start that server again on the same port.
set -uo pipefail
if [ "${DPO_PG_OWN_SERVER:-0}" = 1 ]; then
  unset DPO_TEST_PG_URL
fi

if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
if [ -n "${DPO_TEST_PG_URL:-}" ]; then
  exec "$@"
fi

PG_BIN=${DPO_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
  echo "with_pg.sh: PostgreSQL server binaries not found (apt-get install postgresql); running without" >&2
  exec "$@"
fi

# Run the server binaries as postgres when we are root; as ourselves otherwise.
if [ "$(id -u)" -eq 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "with_pg.sh: no postgres user; running without PostgreSQL" >&2
    exec "$@"
  fi
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

PG_DIR=$(mktemp -d /tmp/dpo-pg.XXXXXX)
chmod 755 "$PG_DIR"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DIR"

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

cleanup() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U dpo -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1; then
  echo "with_pg.sh: initdb failed:" >&2
  cat "$PG_DIR/initdb.log" >&2
  exit 1
fi

started=0
for attempt in 1 2 3 4 5; do
  PORT=$(free_port)
  PG_OPTS="-k $PG_DIR -p $PORT -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off"
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 -o "$PG_OPTS" start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ "$started" -ne 1 ]; then
  echo "with_pg.sh: the PostgreSQL server did not start:" >&2
  cat "$PG_DIR/log" >&2 2>/dev/null
  exit 1
fi
# Connectable database "dpo" (tests create their own databases next to it).
as_pg "$PG_BIN/../bin/createdb" -h 127.0.0.1 -p "$PORT" -U dpo dpo 2>/dev/null \
  || as_pg psql -h 127.0.0.1 -p "$PORT" -U dpo -d postgres -c "CREATE DATABASE dpo" >/dev/null

export DPO_TEST_PG_URL="postgresql://dpo@127.0.0.1:$PORT/dpo"
AS_PG=""
[ "$(id -u)" -eq 0 ] && AS_PG="runuser -u postgres --"
export DPO_TEST_PG_STOP="$AS_PG $PG_BIN/pg_ctl -D $PG_DIR/data -m fast -w stop"
export DPO_TEST_PG_START="$AS_PG $PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/log -w -t 30 -o '$PG_OPTS' start"
echo "with_pg.sh: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $DPO_TEST_PG_URL" >&2
"$@"
status=$?
exit $status
