-- staging.successes: one row per live success, its latest version, with when it
-- happened and who/what it is credited to pulled out of `record` (the raw
-- table types only created_at and updated_at for this stream).
-- Otherwise exactly _latest_version.sql: the newest updated_at per id wins,
-- whichever way it arrived, and ids a tombstone covers are dropped.
DROP TABLE IF EXISTS staging.successes;

CREATE TABLE staging.successes AS
SELECT
    latest.*,
    CAST(latest.record ->> 'succeeded_at' AS TIMESTAMPTZ) AS succeeded_at,
    CAST(latest.record -> 'user' ->> 'id' AS BIGINT) AS user_id,
    CAST(latest.record -> 'person' ->> 'id' AS BIGINT) AS person_id,
    CAST(latest.record -> 'latest_cadence' ->> 'id' AS BIGINT) AS cadence_id,
    CAST(latest.record -> 'latest_step' ->> 'id' AS BIGINT) AS step_id
FROM (
    SELECT DISTINCT ON (id) *
    FROM raw.successes
    ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC
) AS latest
WHERE NOT EXISTS (
    SELECT 1
    FROM raw._tombstones AS tombstone
    WHERE tombstone.stream = 'successes'
      AND tombstone.id = CAST(latest.id AS VARCHAR)
      AND (
          tombstone.hides_through IS NULL
          OR latest.updated_at IS NULL
          OR latest.updated_at <= tombstone.hides_through
      )
);
