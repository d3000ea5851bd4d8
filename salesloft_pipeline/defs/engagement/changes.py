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
  of its (person, cadence) pair. The day of a first touch built for the pair
  is rebuilt with the rest if it may no longer be first (its membership
  changed, it was one of the changed records, or a changed one now comes
  before it); then, with every changed email and call in the facts, the day
  of each of the pair's memberships' first touch now (the earliest email or
  call fact at or after `added_at`), if it was not rebuilt already.

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


@dataclass
class DaysUpdate:
    days: list[date] = field(default_factory=list)  # the days rebuilt
    changed_ids: int = 0  # changed staging ids taken from the queue
    exhaustive: bool = False  # every day compared (a full staging rebuild, or nothing built yet)
    rebuilt_models: bool = False  # the models or their settings changed: every day rebuilt from scratch


def _changed(stream: str) -> str:
    return f"(SELECT source_id FROM _changed WHERE stream = '{stream}')"


FACTS = f"engagement.{models.FACTS}"
# The facts rows of the changed records, reached through each stream's activities so
# that Postgres looks them up on the (activity, source_id) index rather than scanning
# every fact (a join on a CASE of the facts' activity can use no index).
CHANGED_FACTS = (
    "_changed AS c JOIN (VALUES "
    + ", ".join(f"('{s}', '{a}')" for a, s in ACTIVITY_STREAM.items())
    + f") AS a (stream, activity) ON a.stream = c.stream JOIN {FACTS} AS f"
    " ON f.activity = a.activity AND f.source_id = c.source_id"
)


def pairs_sql() -> str:
    """The (person, cadence) pairs of the changed emails, calls and memberships, as built and as they are now."""
    parts = [
        f"SELECT f.person_id, f.cadence_id FROM {CHANGED_FACTS}"
        " WHERE f.activity IN ('email', 'call', 'membership_added', 'first_touch')",
        *(
            f"SELECT {person}, cadence_id FROM staging.{stream} WHERE id IN {_changed(stream)}"
            for stream, person in PAIR_COLUMNS.items()
        ),
    ]
    return f"SELECT DISTINCT person_id, cadence_id FROM ({' UNION '.join(parts)}) AS p (person_id, cadence_id)" \
        " WHERE person_id IS NOT NULL AND cadence_id IS NOT NULL"


def direct_days_sql() -> str:
    """The activity days the ids in `_changed` (stream, source_id) were on and are on now,
    and the days of the first touches built for the pairs in `_pairs` that may no longer be first."""
    was = [
        f"SELECT f.activity_day FROM {CHANGED_FACTS}",
        f"SELECT activity_day FROM {FACTS} WHERE activity = 'meeting' AND user_id IN {_changed('users')}",
        # A first touch built for a pair goes if its membership changed, if it was one of
        # the changed emails or calls, or if a changed one now comes before it.
        f"SELECT f.activity_day FROM {FACTS} AS f JOIN _pairs AS p"
        " ON f.person_id = p.person_id AND f.cadence_id = p.cadence_id WHERE f.activity = 'first_touch' AND ("
        f"f.source_id IN {_changed('cadence_memberships')}"
        f" OR EXISTS (SELECT 1 FROM {FACTS} AS g JOIN _changed AS c ON c.source_id = g.source_id"
        " AND c.stream = CASE g.activity WHEN 'email' THEN 'emails' ELSE 'calls' END"
        " WHERE g.activity IN ('email', 'call') AND g.person_id = f.person_id AND g.cadence_id = f.cadence_id"
        " AND g.occurred_at = f.occurred_at)"
        f" OR EXISTS (SELECT 1 FROM staging.emails AS e JOIN staging.cadence_memberships AS m ON m.id = f.source_id"
        f" WHERE e.id IN {_changed('emails')} AND e.recipient_id = f.person_id AND e.cadence_id = f.cadence_id"
        " AND e.sent_at >= m.added_at AND e.sent_at < f.occurred_at)"
        f" OR EXISTS (SELECT 1 FROM staging.calls AS k JOIN staging.cadence_memberships AS m ON m.id = f.source_id"
        f" WHERE k.id IN {_changed('calls')} AND k.called_person_id = f.person_id AND k.cadence_id = f.cadence_id"
        " AND k.created_at >= m.added_at AND k.created_at < f.occurred_at))",
    ]
    now = [
        *(
            f"SELECT {models.day_of(column)} FROM staging.{stream} WHERE id IN {_changed(stream)}"
            for stream, column in ACTIVITY_TIME.items()
        ),
        f"SELECT {models.day_of('created_at')} FROM staging.meetings"
        f" WHERE booked_by_user_id IN (SELECT guid FROM staging.users WHERE id IN {_changed('users')})",
    ]
    union = "\n    UNION ALL ".join(was + now)
    return f"SELECT DISTINCT day FROM (\n    {union}\n) AS touched (day) WHERE day IS NOT NULL ORDER BY 1"


def first_touch_days_sql() -> str:
    """The days of the first touches of the memberships of `_pairs` that the facts do not
    hold yet, found in the facts once every changed email and call is in them: the
    earliest email or call fact of the membership's person and cadence at or after it
    was added."""
    return (
        f"SELECT DISTINCT {models.day_of('now_.first_touch_at')} FROM (\n"
        "    SELECT m.id, MIN(f.occurred_at) AS first_touch_at\n"
        "    FROM staging.cadence_memberships AS m\n"
        "    JOIN _pairs AS p ON p.person_id = m.person_id AND p.cadence_id = m.cadence_id\n"
        f"    JOIN {FACTS} AS f ON f.person_id = m.person_id AND f.cadence_id = m.cadence_id\n"
        "     AND f.activity IN ('email', 'call') AND f.occurred_at >= m.added_at\n"
        "    GROUP BY m.id\n"
        ") AS now_\n"
        f"LEFT JOIN {FACTS} AS built ON built.activity = 'first_touch' AND built.source_id = now_.id\n"
        "WHERE built.occurred_at IS NULL OR built.occurred_at <> now_.first_touch_at ORDER BY 1"
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
            analyze=True,
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

        def rebuild(days: list[date]) -> None:
            days = sorted(d for d in set(days) - set(update.days) if first <= d <= last)
            if days:
                conn.execute(models.days_script(wh, models.day_ranges(days)))
                update.days = sorted({*update.days, *days})

        if update.exhaustive:
            rebuild(models.stale_days(wh, first, last, conn))
        else:
            wh.temp_table(conn, "_pairs", f"AS {pairs_sql()}", analyze=True)  # before the facts change
            rebuild([day for (day,) in conn.execute(direct_days_sql()).fetchall()])
            # With every changed email and call in the facts now, a pair's first touch is found
            # there; if it moved to a day not rebuilt yet, that day is rebuilt too.
            rebuild([day for (day,) in conn.execute(first_touch_days_sql()).fetchall()])
        if not facts_built:
            if not update.days:  # nothing happened yet: the tables exist anyway, empty
                conn.execute(models.days_script(wh, [(last, last)]))
            conn.execute(models.record_fingerprint_sql(wh))
    return update
