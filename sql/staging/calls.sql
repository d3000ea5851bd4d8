-- staging.calls: one row per live call, its latest version, with disposition,
-- sentiment, duration (seconds, null on many unconnected calls) and the
-- `connected` flag some accounts' call records carry, pulled out of `record`.
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'disposition' AS VARCHAR) AS disposition,
CAST(latest.record ->> 'sentiment' AS VARCHAR) AS sentiment,
CAST(latest.record ->> 'duration' AS DOUBLE PRECISION) AS duration,
CAST(latest.record ->> 'connected' AS BOOLEAN) AS connected
