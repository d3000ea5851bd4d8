-- staging.calls: one row per live call, its latest version, with disposition,
-- sentiment, duration (seconds, null on many unconnected calls) and the
-- `connected` flag some accounts' call records carry, pulled out of `record`.
-- Otherwise exactly _latest_version.sql: the newest updated_at per id wins,
-- whichever way it arrived, and ids a tombstone covers are dropped.
DROP TABLE IF EXISTS staging.calls;

CREATE TABLE staging.calls AS
SELECT
    latest.*,
    CAST(latest.record ->> 'disposition' AS VARCHAR) AS disposition,
    CAST(latest.record ->> 'sentiment' AS VARCHAR) AS sentiment,
    CAST(latest.record ->> 'duration' AS DOUBLE PRECISION) AS duration,
    CAST(latest.record ->> 'connected' AS BOOLEAN) AS connected
FROM (
    SELECT DISTINCT ON (id) *
    FROM raw.calls
    ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC
) AS latest
WHERE NOT EXISTS (
    SELECT 1
    FROM raw._tombstones AS tombstone
    WHERE tombstone.stream = 'calls'
      AND tombstone.id = CAST(latest.id AS VARCHAR)
      AND (
          tombstone.hides_through IS NULL
          OR latest.updated_at IS NULL
          OR latest.updated_at <= tombstone.hides_through
      )
);
