-- staging.users: one row per live user, its latest version, with the user's guid
-- pulled out of `record` (meetings name their booker by guid, not by id).
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'guid' AS VARCHAR) AS guid
