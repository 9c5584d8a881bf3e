#!/bin/sh
# Entrypoint of authzd's locally built Postgres image (docker/postgres/Dockerfile), a small stand-in for
# the official image's, taking the same settings:
#   POSTGRES_USER (postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, POSTGRES_DB (= user),
#   POSTGRES_HOST_AUTH_METHOD (scram-sha-256 with a password; trust must be asked for),
#   POSTGRES_TRACK_COMMIT_TIMESTAMP (on: SpiceDB's Watch API on Postgres needs it).
# On first start (empty $PGDATA) it runs initdb and creates the database on a server that listens on a
# private Unix socket only, so that neither a TCP client nor the healthcheck sees that server.
# Arguments after "postgres" (e.g. -c max_connections=300) go to the server.
set -eu

if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
shift

user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
password=${POSTGRES_PASSWORD:-}
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  password=$(cat "$POSTGRES_PASSWORD_FILE")
fi
auth=${POSTGRES_HOST_AUTH_METHOD:-}
if [ -z "$auth" ]; then
  if [ -z "$password" ]; then
    echo "docker-entrypoint: set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust" >&2
    exit 1
  fi
  auth=scram-sha-256
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "docker-entrypoint: initialising $PGDATA (superuser $user, host auth $auth)"
  umask 077
  pwopt=
  if [ -n "$password" ]; then
    # The password goes through a file only readable by us, never onto a command line.
    pwfile=$(mktemp)
    printf '%s\n' "$password" > "$pwfile"
    pwopt="--pwfile=$pwfile"
  fi
  initdb -D "$PGDATA" -U "$user" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host="$auth" $pwopt >/tmp/initdb.log 2>&1 || { cat /tmp/initdb.log >&2; exit 1; }
  [ -z "$pwopt" ] || rm -f "$pwfile"
  cat >> "$PGDATA/postgresql.conf" <<CONF
# docker-entrypoint.sh
listen_addresses = '*'
track_commit_timestamp = ${POSTGRES_TRACK_COMMIT_TIMESTAMP:-on}
CONF
  printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

  if [ "$db" != postgres ]; then
    sock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -w -l /tmp/init-server.log \
      -o "-c listen_addresses='' -c unix_socket_directories=$sock" start >/dev/null
    psql -q -h "$sock" -U "$user" -d postgres -v ON_ERROR_STOP=1 -v db="$db" <<'SQL'
CREATE DATABASE :"db";
SQL
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    rmdir "$sock"
  fi
  umask 022
  echo "docker-entrypoint: initialised"
fi

exec postgres -D "$PGDATA" "$@"
