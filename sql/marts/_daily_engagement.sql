-- The daily engagement aggregation, one definition for three groupings:
-- engagement.daily_engagement (the team), daily_engagement_by_user and
-- daily_engagement_by_cadence (models.py fills {by} with the grouping key:
-- nothing, `, user_id` or `, cadence_id`). Each model's own file says what
-- its rows are. Built from engagement.activity_facts for days
-- the days being built.
WITH facts AS (
    SELECT *
    FROM engagement.activity_facts
    WHERE {on_days(activity_day)}
),
totals AS (
    SELECT
        activity_day{by},
        COUNT(*) FILTER (WHERE activity = 'email') AS emails_sent,
        COUNT(*) FILTER (WHERE activity = 'email' AND bounced) AS emails_bounced,
        COUNT(*) FILTER (WHERE activity = 'email' AND NOT bounced) AS emails_delivered,
        COUNT(*) FILTER (WHERE activity = 'email' AND opened) AS emails_opened,
        COUNT(*) FILTER (WHERE activity = 'email' AND clicked) AS emails_clicked,
        COUNT(*) FILTER (WHERE activity = 'email' AND replied) AS emails_replied,
        COUNT(*) FILTER (WHERE activity = 'call') AS calls,
        COUNT(*) FILTER (WHERE activity = 'call' AND connected) AS calls_connected,
        COALESCE(SUM(duration_seconds) FILTER (WHERE activity = 'call' AND connected), 0) AS talk_time_seconds,
        COALESCE(SUM(duration_seconds) FILTER (WHERE activity = 'call'), 0) AS call_duration_seconds,
        COUNT(*) FILTER (WHERE activity = 'meeting' AND NOT canceled) AS meetings_booked,
        COUNT(*) FILTER (WHERE activity = 'meeting' AND NOT canceled AND no_show) AS meetings_no_show,
        COUNT(*) FILTER (WHERE activity = 'success') AS successes,
        COUNT(*) FILTER (WHERE activity = 'first_touch') AS first_touches,
        -- only first_touch rows carry seconds_to_first_touch; the median ignores NULLs
        PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY seconds_to_first_touch) AS median_seconds_to_first_touch
    FROM facts
    GROUP BY activity_day{by}
),
-- Distinct people: each person once per day (and key) and kind of contact.
people_per_day AS (
    SELECT
        activity_day{by}, person_id,
        MAX(CASE WHEN activity = 'email' THEN 1 ELSE 0 END) AS emailed,
        MAX(CASE WHEN activity IN ('email', 'call') THEN 1 ELSE 0 END) AS touched,
        MAX(CASE WHEN activity = 'membership_added' THEN 1 ELSE 0 END) AS added
    FROM facts
    WHERE person_id IS NOT NULL AND activity IN ('email', 'call', 'membership_added')
    GROUP BY activity_day{by}, person_id
),
people AS (
    SELECT
        activity_day{by},
        SUM(emailed) AS people_emailed,
        SUM(touched) AS people_touched,
        SUM(added) AS people_added_to_cadences
    FROM people_per_day
    GROUP BY activity_day{by}
)
SELECT
    totals.activity_day,{by_column}
    totals.emails_sent,
    totals.emails_bounced,
    totals.emails_delivered,
    totals.emails_opened,
    totals.emails_clicked,
    totals.emails_replied,
    CAST(COALESCE(people.people_emailed, 0) AS BIGINT) AS people_emailed,
    totals.calls,
    totals.calls_connected,
    totals.talk_time_seconds,
    totals.call_duration_seconds,
    totals.meetings_booked,
    totals.meetings_no_show,
    totals.successes,
    CAST(COALESCE(people.people_touched, 0) AS BIGINT) AS people_touched,
    CAST(COALESCE(people.people_added_to_cadences, 0) AS BIGINT) AS people_added_to_cadences,
    totals.first_touches,
    CASE WHEN emails_delivered > 0 THEN CAST(emails_opened AS DOUBLE PRECISION) / emails_delivered END AS open_rate,
    CASE WHEN emails_delivered > 0 THEN CAST(emails_clicked AS DOUBLE PRECISION) / emails_delivered END AS click_rate,
    CASE WHEN emails_delivered > 0 THEN CAST(emails_replied AS DOUBLE PRECISION) / emails_delivered END AS reply_rate,
    CASE WHEN emails_sent > 0 THEN CAST(emails_bounced AS DOUBLE PRECISION) / emails_sent END AS bounce_rate,
    CASE WHEN calls > 0 THEN CAST(calls_connected AS DOUBLE PRECISION) / calls END AS connect_rate,
    CAST(median_seconds_to_first_touch / 3600.0 AS DOUBLE PRECISION) AS median_hours_to_first_touch
FROM totals
LEFT JOIN people ON people.activity_day = totals.activity_day{by_join}
