-- staging.emails: one row per live email, its latest version, with the fields the
-- engagement metrics read pulled out of `record`: status, bounced and the
-- engagement counts (views = opens, clicks, replies; each a running total that
-- SalesLoft bumps, with `updated_at`, whenever a late open/click/reply arrives).
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'status' AS VARCHAR) AS status,
CAST(latest.record ->> 'bounced' AS BOOLEAN) AS bounced,
CAST(latest.record -> 'counts' ->> 'views' AS BIGINT) AS views,
CAST(latest.record -> 'counts' ->> 'clicks' AS BIGINT) AS clicks,
CAST(latest.record -> 'counts' ->> 'replies' AS BIGINT) AS replies
