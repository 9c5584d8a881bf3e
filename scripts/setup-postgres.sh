#!/usr/bin/env bash
# Installs (from Debian's packages) and starts the local PostgreSQL that `make run` and `make test` use:
# 127.0.0.1:5432, user postgres with trust auth on loopback, track_commit_timestamp=on (SpiceDB's Watch API
# on Postgres needs it) and track_wal_io_timing=on (the benchmark reports how long WAL flushes took), and a
# pool of recycled WAL segments (min_wal_size; see "Postgres for the audit log" in docs/deployment.md: without
# it, a commit that crosses into a new segment creates and zero-fills 16 MB first, and every decision waiting
# on the audit stalls 25-70 ms behind it).
# Idempotent and silent when everything is in place (one query), so `make run` and `make test` call it first.
# Where a step cannot run here (not root and no sudo, not Debian), it says what to run instead.
# Meant for development and CI machines only: trust auth on loopback is not a production setting.
set -euo pipefail

say() { echo "setup-postgres: $*"; }

# The settings this script writes, as the server reports them once they are in effect.
psql_q() { psql -X -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
state_sql="select current_setting('track_commit_timestamp') || ' ' || current_setting('track_wal_io_timing')
  || ' ' || current_setting('max_connections') || ' ' || current_setting('fsync')
  || ' ' || current_setting('min_wal_size') || ' ' || current_setting('max_wal_size')
  || ' ' || ((select count(*) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}\$')
    >= pg_size_bytes(current_setting('min_wal_size')) / pg_size_bytes(current_setting('wal_segment_size')))"
want_state="on on 400 on 2GB 4GB true"
if command -v psql >/dev/null 2>&1 && [ "$(psql_q "$state_sql" 2>/dev/null)" = "$want_state" ]; then
  exit 0
fi

# A server someone else runs (not a Debian cluster): use it when it has what authzd needs, else say what to do.
if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
  if command -v psql >/dev/null 2>&1 && [ "$(psql_q "show track_commit_timestamp" 2>/dev/null)" = on ]; then
    say "using the PostgreSQL on 127.0.0.1:5432 as it is (not a Debian cluster; its WAL pool and other settings are left alone)"
    exit 0
  fi
  cat >&2 <<'MSG'
setup-postgres: this is not a Debian machine (no apt-get), so PostgreSQL cannot be installed from here.
Start PostgreSQL 15 or newer on 127.0.0.1:5432 with trust auth for user postgres and track_commit_timestamp=on,
for example with Docker:
  docker run -d --name authzd-postgres -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust \
    postgres:15 -c track_commit_timestamp=on
or point authzd at another server (AUTHZ_DATABASE_URL=... make run, AUTHZ_TEST_DATABASE_URL=... make test),
or run everything in containers: make images && docker compose up (docs/getting-started.md). Then run make again.
MSG
  exit 1
fi

# Every step below needs root: as root directly, else through sudo when it works without a password prompt
# that would hang a non-interactive run; otherwise stop here with the exact command to run.
if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
  as_root() { sudo "$@"; }
else
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    state="PostgreSQL on 127.0.0.1:5432 reports '$(psql_q "$state_sql" 2>/dev/null || echo unreadable)', want '$want_state' (track_commit_timestamp, track_wal_io_timing, max_connections, fsync, min_wal_size, max_wal_size, WAL pool filled)"
  else
    state="no PostgreSQL answers on 127.0.0.1:5432"
  fi
  echo "setup-postgres: $state, and setting it up needs root (this user is not root, and sudo is missing or asks for a password)." >&2
  echo "setup-postgres: run once as root, then run make again:  sudo $PWD/scripts/setup-postgres.sh  (or: su -c $PWD/scripts/setup-postgres.sh)" >&2
  exit 1
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  say "installing PostgreSQL from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

ver=$(ls /etc/postgresql | sort -V | tail -n1)
conf=/etc/postgresql/$ver/main
changed=0

want_conf="# written by authzd scripts/setup-postgres.sh
listen_addresses = '127.0.0.1'
track_commit_timestamp = on
track_wal_io_timing = on
max_connections = 400
fsync = on
min_wal_size = 2GB
max_wal_size = 4GB"
if [ "$(cat "$conf/conf.d/authzd.conf" 2>/dev/null)" != "$want_conf" ]; then
  printf '%s\n' "$want_conf" | as_root tee "$conf/conf.d/authzd.conf" >/dev/null
  changed=1
fi

want_hba="# written by authzd scripts/setup-postgres.sh: trust on loopback (development and CI only)
local   all all                 trust
host    all all 127.0.0.1/32    trust
host    all all ::1/128         trust"
if [ "$(as_root head -n 4 "$conf/pg_hba.conf")" != "$want_hba" ]; then
  tmp=$(mktemp)
  { printf '%s\n' "$want_hba"; as_root grep -v 'authzd scripts/setup-postgres.sh' "$conf/pg_hba.conf"; } > "$tmp"
  as_root install -o postgres -g postgres -m 640 "$tmp" "$conf/pg_hba.conf"
  rm -f "$tmp"
  changed=1
fi

if pg_isready -h 127.0.0.1 -p 5432 -q; then
  if [ "$changed" = 1 ]; then
    say "restarting PostgreSQL $ver with the new settings"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
  fi
else
  say "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
got=$(psql_q 'show track_commit_timestamp')
if [ "$got" != "on" ]; then
  echo "setup-postgres: track_commit_timestamp is '$got', want on" >&2
  exit 1
fi

# Fill the WAL pool once: a server that has run for a while keeps min_wal_size of recycled segments, a new one
# has to create them (in the commit path) until its first checkpoints. Each round writes one WAL record and
# switches segments; the checkpoint then recycles them for future use. About 2 GB written, seconds.
want=$(psql_q "select pg_size_bytes(current_setting('min_wal_size')) / pg_size_bytes(current_setting('wal_segment_size'))")
have=$(psql_q "select count(*) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'")
if [ "$have" -lt "$want" ]; then
  say "filling the WAL pool ($have of $want segments)"
  psql_q "DO \$\$ BEGIN FOR i IN 1..$((want + 2)) LOOP
    PERFORM pg_logical_emit_message(false, 'authzd-setup', 'wal pool'); PERFORM pg_switch_wal(); END LOOP; END \$\$" >/dev/null
  psql_q "CHECKPOINT"
fi
if [ "$(psql_q "$state_sql")" != "$want_state" ]; then
  echo "setup-postgres: PostgreSQL $ver on 127.0.0.1:5432 reports '$(psql_q "$state_sql")', want '$want_state'" >&2
  exit 1
fi
say "PostgreSQL $ver ready on 127.0.0.1:5432 (track_commit_timestamp=on, WAL pool of $want segments)"
