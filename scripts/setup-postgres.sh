#!/usr/bin/env bash
# Installs (from Debian's packages) and starts the local PostgreSQL that `make run` and `make test` use:
# 127.0.0.1:5432, user postgres with trust auth on loopback, track_commit_timestamp=on (SpiceDB's Watch API
# on Postgres needs it) and track_wal_io_timing=on (the benchmark reports how long WAL flushes took), and a
# pool of recycled WAL segments (min_wal_size; see "Postgres for the audit log" in docs/deployment.md: without
# it, a commit that crosses into a new segment creates and zero-fills 16 MB first, and every decision waiting
# on the audit stalls 25-70 ms behind it). Idempotent: a machine that already has it running with these settings is left as is.
# Meant for development and CI machines only: trust auth on loopback is not a production setting.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  echo "setup-postgres: installing PostgreSQL from Debian's packages"
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
if [ "$(head -n 4 "$conf/pg_hba.conf")" != "$want_hba" ]; then
  { printf '%s\n' "$want_hba"; grep -v 'authzd scripts/setup-postgres.sh' "$conf/pg_hba.conf"; } > /tmp/pg_hba.$$
  as_root install -o postgres -g postgres -m 640 /tmp/pg_hba.$$ "$conf/pg_hba.conf"
  rm -f /tmp/pg_hba.$$
  changed=1
fi

if pg_isready -h 127.0.0.1 -p 5432 -q; then
  if [ "$changed" = 1 ]; then
    echo "setup-postgres: restarting PostgreSQL $ver with the new settings"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
  fi
else
  echo "setup-postgres: starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
got=$(psql -h 127.0.0.1 -U postgres -tAc 'show track_commit_timestamp')
if [ "$got" != "on" ]; then
  echo "setup-postgres: track_commit_timestamp is '$got', want on" >&2
  exit 1
fi

# Fill the WAL pool once: a server that has run for a while keeps min_wal_size of recycled segments, a new one
# has to create them (in the commit path) until its first checkpoints. Each round writes one WAL record and
# switches segments; the checkpoint then recycles them for future use. About 2 GB written, seconds.
psql_q() { psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
want=$(psql_q "select (select setting::bigint from pg_settings where name = 'min_wal_size') * 1048576
  / (select setting::bigint from pg_settings where name = 'wal_segment_size')")
have=$(psql_q "select count(*) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'")
if [ "$have" -lt "$want" ]; then
  echo "setup-postgres: filling the WAL pool ($have of $want segments)"
  psql_q "DO \$\$ BEGIN FOR i IN 1..$((want + 2)) LOOP
    PERFORM pg_logical_emit_message(false, 'authzd-setup', 'wal pool'); PERFORM pg_switch_wal(); END LOOP; END \$\$" >/dev/null
  psql_q "CHECKPOINT"
fi
echo "setup-postgres: PostgreSQL $ver ready on 127.0.0.1:5432 (track_commit_timestamp=on, $(psql_q "select count(*) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'") WAL segments)"
