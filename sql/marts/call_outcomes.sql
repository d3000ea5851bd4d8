-- engagement.call_outcomes: one row per activity day (in the reporting time zone), user, cadence,
-- disposition and sentiment: the calls made that day with that outcome.
-- Sum over sentiment for calls by disposition, over disposition for calls by
-- sentiment, over user or cadence for the team. disposition and sentiment are
-- SalesLoft's labels as the rep logged them (NULL: none logged); cadence_id
-- NULL: a call outside any cadence. Talk time is the duration of connected
-- calls; call_duration_seconds that of every call (voicemails included).
-- Built from engagement.activity_facts for the days being built.
SELECT
    activity_day,
    user_id,
    cadence_id,
    disposition,
    sentiment,
    COUNT(*) AS calls,
    COUNT(*) FILTER (WHERE connected) AS calls_connected,
    COALESCE(SUM(duration_seconds) FILTER (WHERE connected), 0) AS talk_time_seconds,
    COALESCE(SUM(duration_seconds), 0) AS call_duration_seconds
FROM engagement.activity_facts
WHERE {on_days(activity_day)}
  AND activity = 'call'
GROUP BY activity_day, user_id, cadence_id, disposition, sentiment
