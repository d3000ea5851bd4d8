-- engagement.activity_facts: one row per sales activity, on its activity day
-- (the date of the activity's own time in the reporting time zone,
-- SALESLOFT_REPORTING_TIMEZONE; never of updated_at):
--   email             a sent email (by sent_at), with its bounce and its
--                     engagement as it stands now (opened/clicked/replied:
--                     at least one, counted once, and only if delivered);
--   call              a call (by created_at), connected or not (connected: its
--                     disposition is one of SALESLOFT_CONNECTED_DISPOSITIONS,
--                     or the record's own `connected` flag is set);
--   meeting           a meeting (by its booking time, created_at), cancelled
--                     or not, and whether it was a no-show;
--   success           a success (by succeeded_at);
--   membership_added  a person added to a cadence (by added_at);
--   first_touch       a cadence membership's first touch (by the time of the
--                     first email sent or call made to the person in that
--                     cadence at or after added_at), with the wait in seconds.
-- The marts aggregate this table. Rows for the days being built only
-- ({during_days(column)}: the column's instant falls in one of those days;
-- the CTEs read more than once are inlined on Postgres, so that they are
-- filtered to those days).
WITH
sent_emails AS {inline} (
    SELECT id, sent_at, user_id, recipient_id, cadence_id, step_id,
           COALESCE(bounced, FALSE) AS bounced,
           COALESCE(views, 0) AS views, COALESCE(clicks, 0) AS clicks, COALESCE(replies, 0) AS replies
    FROM staging.emails
    WHERE sent_at IS NOT NULL
      AND status IN ('sent', 'sent_from_gmail', 'sent_from_external')
),
calls AS {inline} (
    SELECT id, created_at, user_id, called_person_id, cadence_id, step_id, duration, disposition, sentiment,
           (LOWER(disposition) IN {connected_dispositions} OR COALESCE(connected, FALSE)) IS TRUE AS connected
    FROM staging.calls
    WHERE created_at IS NOT NULL
),
-- Touches in these days: emails sent and calls made to a person within a cadence.
touches_in_range AS (
    SELECT recipient_id AS person_id, cadence_id, sent_at AS touched_at
    FROM sent_emails
    WHERE recipient_id IS NOT NULL AND cadence_id IS NOT NULL
      AND {during_days(sent_at)}
    UNION ALL
    SELECT called_person_id, cadence_id, created_at
    FROM calls
    WHERE called_person_id IS NOT NULL AND cadence_id IS NOT NULL
      AND {during_days(created_at)}
),
-- A membership's first touch in these days (at or after added_at) ...
first_in_range AS (
    SELECT membership.id, membership.user_id, membership.cadence_id, membership.person_id,
           membership.added_at, MIN(touch.touched_at) AS first_touch_at
    FROM staging.cadence_memberships AS membership
    JOIN touches_in_range AS touch
      ON touch.person_id = membership.person_id AND touch.cadence_id = membership.cadence_id
     AND touch.touched_at >= membership.added_at
    GROUP BY membership.id, membership.user_id, membership.cadence_id, membership.person_id, membership.added_at
),
-- ... is its first touch ever if no touch came between added_at and it.
first_touches AS (
    SELECT candidate.*
    FROM first_in_range AS candidate
    WHERE NOT EXISTS (
        SELECT 1 FROM sent_emails AS earlier
        WHERE earlier.recipient_id = candidate.person_id AND earlier.cadence_id = candidate.cadence_id
          AND earlier.sent_at >= candidate.added_at AND earlier.sent_at < candidate.first_touch_at
    )
      AND NOT EXISTS (
        SELECT 1 FROM calls AS earlier
        WHERE earlier.called_person_id = candidate.person_id AND earlier.cadence_id = candidate.cadence_id
          AND earlier.created_at >= candidate.added_at AND earlier.created_at < candidate.first_touch_at
    )
)
SELECT
    CAST(sent_at AT TIME ZONE {zone} AS DATE) AS activity_day,
    CAST('email' AS VARCHAR) AS activity,
    CAST(id AS BIGINT) AS source_id,
    sent_at AS occurred_at,
    CAST(user_id AS BIGINT) AS user_id,
    CAST(cadence_id AS BIGINT) AS cadence_id,
    CAST(step_id AS BIGINT) AS step_id,
    CAST(recipient_id AS BIGINT) AS person_id,
    bounced,
    (NOT bounced AND views > 0) AS opened,
    (NOT bounced AND clicks > 0) AS clicked,
    (NOT bounced AND replies > 0) AS replied,
    CAST(NULL AS BOOLEAN) AS connected,
    CAST(NULL AS DOUBLE PRECISION) AS duration_seconds,
    CAST(NULL AS VARCHAR) AS disposition,
    CAST(NULL AS VARCHAR) AS sentiment,
    CAST(NULL AS BOOLEAN) AS canceled,
    CAST(NULL AS BOOLEAN) AS no_show,
    CAST(NULL AS DOUBLE PRECISION) AS seconds_to_first_touch
FROM sent_emails
WHERE {during_days(sent_at)}

UNION ALL
SELECT
    CAST(created_at AT TIME ZONE {zone} AS DATE), 'call', id, created_at,
    user_id, cadence_id, step_id, called_person_id,
    NULL, NULL, NULL, NULL,
    connected, duration, disposition, sentiment,
    NULL, NULL, NULL
FROM calls
WHERE {during_days(created_at)}

UNION ALL
SELECT
    CAST(meeting.created_at AT TIME ZONE {zone} AS DATE), 'meeting', meeting.id, meeting.created_at,
    booker.id, meeting.cadence_id, meeting.step_id, meeting.person_id,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    (meeting.canceled_at IS NOT NULL OR COALESCE(LOWER(meeting.status) IN ('canceled', 'cancelled'), FALSE)),
    COALESCE(meeting.no_show, FALSE),
    NULL
FROM staging.meetings AS meeting
LEFT JOIN staging.users AS booker ON booker.guid = meeting.booked_by_user_id
WHERE {during_days(meeting.created_at)}

UNION ALL
SELECT
    CAST(succeeded_at AT TIME ZONE {zone} AS DATE), 'success', id, succeeded_at,
    user_id, cadence_id, step_id, person_id,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL
FROM staging.successes
WHERE {during_days(succeeded_at)}

UNION ALL
SELECT
    CAST(added_at AT TIME ZONE {zone} AS DATE), 'membership_added', id, added_at,
    user_id, cadence_id, NULL, person_id,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL
FROM staging.cadence_memberships
WHERE {during_days(added_at)}

UNION ALL
SELECT
    CAST(first_touch_at AT TIME ZONE {zone} AS DATE), 'first_touch', id, first_touch_at,
    user_id, cadence_id, NULL, person_id,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    NULL, NULL,
    CAST(EXTRACT(EPOCH FROM (first_touch_at - added_at)) AS DOUBLE PRECISION)
FROM first_touches
