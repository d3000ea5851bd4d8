-- engagement.cadence_step_funnel: one row per activity day (in the reporting time zone), cadence and
-- step, for activity done on a cadence step.
-- people_reached: distinct people emailed or called on that step that day
-- (the step's reach; read the steps in step order, from staging.steps, to see
-- the funnel narrow). Replies are attributed to the step of the email replied
-- to, on the day that email was sent; meetings to the step recorded on the
-- meeting, on the day it was booked (cancelled meetings excluded).
-- Built from engagement.activity_facts for the days being built.
WITH totals AS (
    SELECT
        activity_day,
        cadence_id,
        step_id,
        COUNT(DISTINCT person_id) FILTER (WHERE activity IN ('email', 'call')) AS people_reached,
        COUNT(*) FILTER (WHERE activity = 'email') AS emails_sent,
        COUNT(*) FILTER (WHERE activity = 'email' AND NOT bounced) AS emails_delivered,
        COUNT(*) FILTER (WHERE activity = 'email' AND replied) AS replies,
        COUNT(*) FILTER (WHERE activity = 'call') AS calls,
        COUNT(*) FILTER (WHERE activity = 'call' AND connected) AS calls_connected,
        COUNT(*) FILTER (WHERE activity = 'meeting' AND NOT canceled) AS meetings_booked
    FROM engagement.activity_facts
    WHERE {on_days(activity_day)}
      AND step_id IS NOT NULL
      AND activity IN ('email', 'call', 'meeting')
    GROUP BY activity_day, cadence_id, step_id
)
SELECT
    activity_day,
    cadence_id,
    step_id,
    people_reached,
    emails_sent,
    emails_delivered,
    replies,
    calls,
    calls_connected,
    meetings_booked,
    CASE WHEN emails_delivered > 0 THEN CAST(replies AS DOUBLE PRECISION) / emails_delivered END AS reply_rate
FROM totals
