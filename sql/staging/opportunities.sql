-- staging.opportunities: one row per live opportunity, its latest version, with
-- its amount as a number (SalesLoft sends "5000.00"; anything not a plain
-- number is NULL here and stays as sent in `record`), stage and outcome.
-- Custom fields get columns of their own (defs/staging/custom_fields.py).
-- Columns added to what sql/staging/_latest_version.sql selects for the stream.
CAST(latest.record ->> 'name' AS VARCHAR) AS name,
CAST(CASE WHEN TRIM(latest.record ->> 'amount') ~ '^-?[0-9]+([.][0-9]+)?$'
          THEN TRIM(latest.record ->> 'amount') END AS NUMERIC(18, 2)) AS amount_value,
CAST(latest.record ->> 'stage_name' AS VARCHAR) AS stage_name,
CAST(latest.record ->> 'is_closed' AS BOOLEAN) AS is_closed,
CAST(latest.record ->> 'is_won' AS BOOLEAN) AS is_won
