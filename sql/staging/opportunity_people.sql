-- staging.opportunity_people: one row per live link of a person to an
-- opportunity, its latest version; SalesLoft sends both ids as plain integers.
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'person_id' AS BIGINT) AS person_id,
CAST(latest.record ->> 'opportunity_id' AS BIGINT) AS opportunity_id
