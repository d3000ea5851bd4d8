-- staging.emails: one row per live email, its latest version, with the fields the
-- engagement metrics read pulled out of `record`: status, bounced and the
-- engagement counts (views = opens, clicks, replies; each a running total that
-- SalesLoft bumps, with `updated_at`, whenever a late open/click/reply arrives).
-- Otherwise exactly _latest_version.sql: the newest updated_at per id wins,
-- whichever way it arrived, and ids a tombstone covers are dropped.
DROP TABLE IF EXISTS staging.emails;

CREATE TABLE staging.emails AS
SELECT
    latest.*,
    CAST(latest.record ->> 'status' AS VARCHAR) AS status,
    CAST(latest.record ->> 'bounced' AS BOOLEAN) AS bounced,
    CAST(latest.record -> 'counts' ->> 'views' AS BIGINT) AS views,
    CAST(latest.record -> 'counts' ->> 'clicks' AS BIGINT) AS clicks,
    CAST(latest.record -> 'counts' ->> 'replies' AS BIGINT) AS replies
FROM (
    SELECT DISTINCT ON (id) *
    FROM raw.emails
    ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC
) AS latest
WHERE NOT EXISTS (
    SELECT 1
    FROM raw._tombstones AS tombstone
    WHERE tombstone.stream = 'emails'
      AND tombstone.id = CAST(latest.id AS VARCHAR)
      AND (
          tombstone.hides_through IS NULL
          OR latest.updated_at IS NULL
          OR latest.updated_at <= tombstone.hides_through
      )
);
