-- Where do commits wait? Samples pg_stat_activity every 2 ms for :secs seconds (default 30) and reports the
-- wait events of COMMITs that had been running for over 5 ms when sampled (one long commit is sampled many
-- times). Run it against a scratch database of the server under load, while the load runs:
--
--   createdb -h HOST -U postgres commitwaits
--   psql -h HOST -U postgres -d commitwaits -v secs=30 -f scripts/pg-commit-waits.sql
--
-- IO:WALSync is the WAL flush: the disk's time, and also the time the backend, woken when the flush completes,
-- waits for a CPU (scripts/wal-sync-waits.bt splits the two; on a busy shared host the second dominated);
-- IO:WALInitWrite / IO:WALInitSync is a commit creating and zero-filling a new WAL segment because no
-- recycled one was left (raise min_wal_size); LWLock:WALWrite is waiting for another backend's flush;
-- no wait event is CPU (the backend is running or waiting to be scheduled). docs/deployment.md, "Postgres for
-- the audit log", says what each one means for authzd. Needs pg_read_all_stats (or a superuser) to see other
-- roles' queries. The samples table is unlogged, so sampling adds no WAL flushes of its own.
\set ON_ERROR_STOP on
\if :{?secs}
\else
  \set secs 30
\endif
CREATE UNLOGGED TABLE IF NOT EXISTS commit_wait_samples (
  sampled_at timestamptz, pid int, wait text, running_ms float8, query text);
TRUNCATE commit_wait_samples;
CREATE OR REPLACE PROCEDURE sample_commit_waits(secs int) LANGUAGE plpgsql AS $$
DECLARE stop timestamptz := clock_timestamp() + make_interval(secs => secs);
BEGIN
  WHILE clock_timestamp() < stop LOOP
    PERFORM pg_stat_clear_snapshot(); -- else every sample in a transaction sees the same snapshot
    INSERT INTO commit_wait_samples
      SELECT clock_timestamp(), pid, coalesce(wait_event_type || ':' || wait_event, 'none (CPU)'),
             extract(epoch FROM clock_timestamp() - query_start) * 1000, left(query, 60)
        FROM pg_stat_activity
       WHERE state = 'active' AND pid <> pg_backend_pid() AND query ~* '^\s*commit';
    COMMIT;
    PERFORM pg_sleep(0.002);
  END LOOP;
END $$;
CALL sample_commit_waits(:secs);
SELECT wait, count(*) AS samples, round(avg(running_ms)::numeric, 1) AS avg_running_ms,
       round(max(running_ms)::numeric, 1) AS max_running_ms
  FROM commit_wait_samples WHERE running_ms > 5 GROUP BY wait ORDER BY samples DESC;
