-- engagement.cadence_pipeline: the pipeline each cadence touched, per day the
-- opportunities were opened (in the reporting time zone) and attribution model.
-- An opportunity is opened at its CRM creation date (`created_date`), or when
-- SalesLoft first saw it if it has none (`created_at`). The cadences that
-- touched it are those that emailed or called one of its people in the
-- {attribution_days} days up to that moment: the people linked to it
-- (staging.opportunity_people) and the people of its account.
--   first_touch  the opportunity counts for the cadence of the earliest such touch;
--   last_touch   for the cadence of the latest one (ties: the lower cadence id).
-- Each opportunity counts once per model, for one cadence, on the day it was
-- opened; one that no cadence touched in the window counts for none.
-- Amounts are the opportunity's amount now (SalesLoft's latest version): an
-- amount edited or a stage changed later, even after it closed, changes the
-- row when the model is rebuilt, which it is whenever staging changes.
-- Touches are the same as the engagement facts': sent emails (by sent_at) and
-- calls (by created_at) with a cadence and a person.
WITH
opportunities AS (
    SELECT id AS opportunity_id, account_id, COALESCE(created_date, created_at) AS opened_at,
           amount_value, COALESCE(is_won, FALSE) AS is_won, COALESCE(is_closed, FALSE) AS is_closed
    FROM staging.opportunities
    WHERE COALESCE(created_date, created_at) IS NOT NULL
),
opportunity_people AS (
    SELECT opportunity_id, person_id
    FROM staging.opportunity_people
    WHERE opportunity_id IS NOT NULL AND person_id IS NOT NULL
    UNION
    SELECT opportunity.opportunity_id, person.id
    FROM opportunities AS opportunity
    JOIN staging.people AS person ON person.account_id = opportunity.account_id
),
touches AS (
    SELECT recipient_id AS person_id, cadence_id, sent_at AS touched_at
    FROM staging.emails
    WHERE sent_at IS NOT NULL AND recipient_id IS NOT NULL AND cadence_id IS NOT NULL
      AND status IN ('sent', 'sent_from_gmail', 'sent_from_external')
    UNION ALL
    SELECT called_person_id, cadence_id, created_at
    FROM staging.calls
    WHERE created_at IS NOT NULL AND called_person_id IS NOT NULL AND cadence_id IS NOT NULL
),
touched AS (
    SELECT opportunity.opportunity_id, touch.cadence_id,
           ROW_NUMBER() OVER (PARTITION BY opportunity.opportunity_id
                              ORDER BY touch.touched_at ASC, touch.cadence_id ASC) AS from_first,
           ROW_NUMBER() OVER (PARTITION BY opportunity.opportunity_id
                              ORDER BY touch.touched_at DESC, touch.cadence_id ASC) AS from_last
    FROM opportunities AS opportunity
    JOIN opportunity_people AS link ON link.opportunity_id = opportunity.opportunity_id
    JOIN touches AS touch
      ON touch.person_id = link.person_id
     AND touch.touched_at <= opportunity.opened_at
     AND touch.touched_at > opportunity.opened_at - {attribution_window}
),
attributed AS (
    SELECT opportunity_id, cadence_id, CAST('first_touch' AS VARCHAR) AS attribution FROM touched WHERE from_first = 1
    UNION ALL
    SELECT opportunity_id, cadence_id, CAST('last_touch' AS VARCHAR) FROM touched WHERE from_last = 1
)
SELECT
    CAST(opportunity.opened_at AT TIME ZONE {zone} AS DATE) AS activity_day,
    CAST(attributed.cadence_id AS BIGINT) AS cadence_id,
    attributed.attribution,
    CAST(count(*) AS BIGINT) AS opportunities,
    CAST(COALESCE(sum(opportunity.amount_value), 0) AS NUMERIC(18, 2)) AS pipeline_amount,
    CAST(count(*) FILTER (WHERE opportunity.is_won) AS BIGINT) AS won_opportunities,
    CAST(COALESCE(sum(opportunity.amount_value) FILTER (WHERE opportunity.is_won), 0) AS NUMERIC(18, 2)) AS won_amount,
    CAST(count(*) FILTER (WHERE opportunity.is_closed AND NOT opportunity.is_won) AS BIGINT) AS lost_opportunities
FROM attributed
JOIN opportunities AS opportunity ON opportunity.opportunity_id = attributed.opportunity_id
GROUP BY 1, 2, 3
