-- staging.users: one row per live user, its latest version, with the user's guid
-- pulled out of `record` (meetings name their booker by guid, not by id).
-- Otherwise exactly _latest_version.sql: the newest updated_at per id wins,
-- whichever way it arrived, and ids a tombstone covers are dropped.
DROP TABLE IF EXISTS staging.users;

CREATE TABLE staging.users AS
SELECT
    latest.*,
    CAST(latest.record ->> 'guid' AS VARCHAR) AS guid
FROM (
    SELECT DISTINCT ON (id) *
    FROM raw.users
    ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC
) AS latest
WHERE NOT EXISTS (
    SELECT 1
    FROM raw._tombstones AS tombstone
    WHERE tombstone.stream = 'users'
      AND tombstone.id = CAST(latest.id AS VARCHAR)
      AND (
          tombstone.hides_through IS NULL
          OR latest.updated_at IS NULL
          OR latest.updated_at <= tombstone.hides_through
      )
);
