"""Which activity days to rebuild: the days the changed records touch, and no others.

Each staging build of an engagement input queues the ids it changed in
`staging._changes` (defs/staging/build.py). `update_changed_days` takes that
queue and, in the same transaction as the rebuild, finds every activity day
whose facts may differ from the ones built:

- where a changed record was: the day of its rows in the facts built
  (an email re-dated, deleted, or no longer sent leaves that day);
- where it is now: the day of its activity time in staging (sent_at of an
  email, created_at of a call or meeting, succeeded_at, added_at), whatever
  its status, so a superset of the day its fact lands on;
- meetings booked by a changed user (the booker is matched by guid);
- first touches: a changed email, call or membership can move the first touch
  of its (person, cadence) pair, so the days of the pair's first touches built,
  and of every email and call of the pair now (the new first touch is one of
  them).

A day that did not change can be in the set (it is rebuilt for nothing); a day
that changed never escapes it, so rebuilding these days gives what rebuilding
every day would. A full staging rebuild queues `*` (anything may have
changed): then, and when the facts were never built, every day is compared
the slow way (`models.stale_days`). When the models or their settings changed
since the tables were built (`models.fingerprint`), every day is rebuilt from
scratch. Nothing here scans the whole history in the steady state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from salesloft_pipeline.warehouse import Warehouse

from ..staging.build import EVERYTHING
from . import models

# The stream a facts row of each activity comes from.
ACTIVITY_STREAM = {
    "email": "emails",
    "call": "calls",
    "meeting": "meetings",
    "success": "successes",
    "membership_added": "cadence_memberships",
    "first_touch": "cadence_memberships",
}
# Each input's activity time, and the columns naming the person and cadence touched.
ACTIVITY_TIME = {
    "emails": "sent_at",
    "calls": "created_at",
    "meetings": "created_at",
    "successes": "succeeded_at",
    "cadence_memberships": "added_at",
}
PAIR_COLUMNS = {"emails": "recipient_id", "calls": "called_person_id", "cadence_memberships": "person_id"}


def day_of(column: str) -> str:
    """The activity day of a timestamp column, as the facts take it."""
    return f"CAST({column} AT TIME ZONE 'UTC' AS DATE)"


@dataclass
class DaysUpdate:
    days: list[date] = field(default_factory=list)  # the days rebuilt
    changed_ids: int = 0  # changed staging ids taken from the queue
    exhaustive: bool = False  # every day compared (a full staging rebuild, or nothing built yet)
    rebuilt_models: bool = False  # the models or their settings changed: every day rebuilt from scratch


def _changed(stream: str) -> str:
    return f"(SELECT source_id FROM _changed WHERE stream = '{stream}')"


def affected_days_sql() -> str:
    """The activity days the ids in `_changed` (stream, source_id) may have changed."""
    facts = f"engagement.{models.FACTS}"
    stream_of = "CASE f.activity " + " ".join(f"WHEN '{a}' THEN '{s}'" for a, s in ACTIVITY_STREAM.items()) + " END"
    pairs = [
        f"SELECT f.person_id, f.cadence_id FROM {facts} AS f JOIN _changed AS c"
        f" ON c.source_id = f.source_id AND c.stream = {stream_of}"
        " WHERE f.activity IN ('email', 'call', 'membership_added', 'first_touch')",
        *(
            f"SELECT {person}, cadence_id FROM staging.{stream} WHERE id IN {_changed(stream)}"
            for stream, person in PAIR_COLUMNS.items()
        ),
    ]
    was = [
        f"SELECT f.activity_day FROM {facts} AS f JOIN _changed AS c ON c.source_id = f.source_id AND c.stream = {stream_of}",
        f"SELECT activity_day FROM {facts} WHERE activity = 'meeting' AND user_id IN {_changed('users')}",
        f"SELECT f.activity_day FROM {facts} AS f JOIN pairs AS p"
        " ON f.person_id = p.person_id AND f.cadence_id = p.cadence_id WHERE f.activity = 'first_touch'",
    ]
    now = [
        *(
            f"SELECT {day_of(column)} FROM staging.{stream} WHERE id IN {_changed(stream)}"
            for stream, column in ACTIVITY_TIME.items()
        ),
        f"SELECT {day_of('created_at')} FROM staging.meetings"
        f" WHERE booked_by_user_id IN (SELECT guid FROM staging.users WHERE id IN {_changed('users')})",
        f"SELECT {day_of('t.sent_at')} FROM staging.emails AS t JOIN pairs AS p"
        " ON t.recipient_id = p.person_id AND t.cadence_id = p.cadence_id",
        f"SELECT {day_of('t.created_at')} FROM staging.calls AS t JOIN pairs AS p"
        " ON t.called_person_id = p.person_id AND t.cadence_id = p.cadence_id",
    ]
    union = "\n    UNION ALL ".join(was + now)
    return (
        f"WITH pairs AS (\n    {' UNION '.join(pairs)}\n)\n"
        f"SELECT DISTINCT day FROM (\n    {union}\n) AS touched (day) WHERE day IS NOT NULL ORDER BY 1"
    )


def update_changed_days(wh: Warehouse, first: date, last: date) -> DaysUpdate:
    """Rebuilds every model for the days in first..last that the queued changes touch,
    and takes those changes off the queue, all in one transaction."""
    p = wh.PARAM
    inputs = ", ".join(f"'{s}'" for s in models.INPUT_STREAMS)
    update = DaysUpdate()
    with wh.transaction(serialise=models.SERIALISE) as conn:
        wh.temp_table(
            conn,
            "_changed",
            f"AS SELECT DISTINCT stream, id, CASE WHEN id = '{EVERYTHING}' THEN NULL ELSE CAST(id AS BIGINT) END"
            f" AS source_id FROM staging._changes WHERE stream IN ({inputs})",
        )
        # Only what was read goes off the queue: a change queued meanwhile stays for the next update.
        conn.execute(
            "DELETE FROM staging._changes WHERE EXISTS (SELECT 1 FROM _changed"
            " WHERE _changed.stream = staging._changes.stream AND _changed.id = staging._changes.id)"
        )
        [(update.changed_ids, everything)] = conn.execute(
            "SELECT count(source_id), count(*) - count(source_id) FROM _changed"
        ).fetchall()
        [(facts_built,)] = conn.execute(
            f"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'engagement' AND table_name = {p}",
            [models.FACTS],
        ).fetchall()
        conn.execute(models.builds_table_sql(wh))
        built_with = conn.execute("SELECT fingerprint FROM engagement._builds WHERE name = 'models'").fetchall()
        if facts_built and built_with != [(models.fingerprint(),)]:
            # The models or their settings changed: every day, from scratch.
            update.exhaustive = update.rebuilt_models = True
            update.days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
            conn.execute(models.days_script(wh, [(first, last)], rebuild=True) + models.record_fingerprint_sql(wh))
            return update
        update.exhaustive = bool(everything) or not facts_built
        if update.exhaustive:
            days = models.stale_days(wh, first, last, conn)
        else:
            days = [day for (day,) in conn.execute(affected_days_sql()).fetchall()]
        update.days = [day for day in days if first <= day <= last]
        if update.days:
            conn.execute(models.days_script(wh, models.day_ranges(update.days)))
        if not facts_built:
            if not update.days:  # nothing happened yet: the tables exist anyway, empty
                conn.execute(models.days_script(wh, [(last, last)]))
            conn.execute(models.record_fingerprint_sql(wh))
    return update
