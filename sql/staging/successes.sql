-- staging.successes: one row per live success, its latest version, with when it
-- happened and who/what it is credited to pulled out of `record` (the raw
-- table types only created_at and updated_at for this stream).
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'succeeded_at' AS TIMESTAMPTZ) AS succeeded_at,
CAST(latest.record -> 'user' ->> 'id' AS BIGINT) AS user_id,
CAST(latest.record -> 'person' ->> 'id' AS BIGINT) AS person_id,
CAST(latest.record -> 'latest_cadence' ->> 'id' AS BIGINT) AS cadence_id,
CAST(latest.record -> 'latest_step' ->> 'id' AS BIGINT) AS step_id
