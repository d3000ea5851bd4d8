-- staging.{stream}: one row per live id of raw.{stream}, its latest version.
-- raw.{stream} holds every version loaded (one per partition that saw it, plus
-- webhook versions); the newest updated_at wins, whichever way it arrived.
-- An id is dropped when a tombstone (a *_deleted webhook, or the id missing
-- from a full refresh) covers its latest version.
-- sql/staging/<stream>.sql, where it exists, lists columns to add after latest.*:
-- typed fields pulled out of `record` for the marts.
-- {ids} is empty for a full build, or restricts the build to the ids whose
-- raw versions changed (an incremental merge gives the same rows for them).
SELECT latest.*{columns}
FROM (
    SELECT DISTINCT ON (id) *
    FROM raw.{stream}
    {ids}
    ORDER BY id, updated_at DESC NULLS LAST, _extracted_at DESC
) AS latest
WHERE NOT EXISTS (
    SELECT 1
    FROM raw._tombstones AS tombstone
    WHERE tombstone.stream = '{stream}'
      AND tombstone.id = CAST(latest.id AS VARCHAR)
      AND (
          tombstone.hides_through IS NULL
          OR latest.updated_at IS NULL
          OR latest.updated_at <= tombstone.hides_through
      )
)
