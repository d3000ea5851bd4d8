-- staging.meetings: one row per live meeting, its latest version, with status and
-- no_show pulled out of `record` (canceled_at, start_time and the
-- booked_by_user guid are typed columns of the raw table already).
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'status' AS VARCHAR) AS status,
CAST(latest.record ->> 'no_show' AS BOOLEAN) AS no_show
