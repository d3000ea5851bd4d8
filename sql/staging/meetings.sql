-- staging.meetings: one row per live meeting, its latest version, with status and
-- no_show pulled out of `record` (canceled_at, start_time and the
-- booked_by_user guid are typed columns of the raw table already).
-- Otherwise exactly _latest_version.sql: the newest updated_at per id wins,
-- whichever way it arrived, and ids a tombstone covers are dropped.
DROP TABLE IF EXISTS staging.meetings;

CREATE TABLE staging.meetings AS
SELECT
    latest.*,
    CAST(latest.record ->> 'status' AS VARCHAR) AS status,
    CAST(latest.record ->> 'no_show' AS BOOLEAN) AS no_show
FROM (
    SELECT DISTINCT ON (id) *
    FROM raw.meetings
    ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC
) AS latest
WHERE NOT EXISTS (
    SELECT 1
    FROM raw._tombstones AS tombstone
    WHERE tombstone.stream = 'meetings'
      AND tombstone.id = CAST(latest.id AS VARCHAR)
      AND (
          tombstone.hides_through IS NULL
          OR latest.updated_at IS NULL
          OR latest.updated_at <= tombstone.hides_through
      )
);
