"""The simulator's HTTP API: SalesLoft's `/v2` and the `/__sim` inspection routes.

Behaviour follows docs/simulator.md, itself written from SalesLoft's
documentation. Order of checks on `/v2`: authentication (401, free), routing,
cost and budget (429, free), injected faults, then the request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from salesloft_pipeline.serving import serve_in_thread

from .activity import Activity, make_ties
from .catalog import BY_NAME, BY_PATH, SORT_KEYS, SimStream
from .config import SimulatorConfig
from .faults import Faults, FaultSettings
from .generator import TEAM_ID, email_subject, populate
from .oauth import OAuth
from .paging import paging_metadata
from .ratelimit import RateLimiter, page_cost
from .store import Query, Store, Table
from .webhooks import Webhooks
from .writes import Refused, Writes

JSON = "application/json; charset=utf-8"
SUBJECT_SCOPE = "email_contents:read"
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type=JSON)


class RequestError(Exception):
    """A request SalesLoft would refuse: answered with `status` and `payload`."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def invalid(field: str, message: str) -> RequestError:
    return RequestError(422, {"errors": {field: [message]}})


class DropConnection(Exception):
    """Raised after the response headers went out, so the server closes the connection."""


class _HideDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


class DroppedResponse(Response):
    """Sends the headers of a full answer, then drops the connection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        raise DropConnection()


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.cost = 0
        self.requests_by_cost: Counter[int] = Counter()
        self.rate_limited = 0
        self.deepest_page = 0
        self.faults_injected: Counter[str] = Counter()
        self.by_stream: Counter[str] = Counter()
        self.writes_by_endpoint: Counter[str] = Counter()
        self.writes_refused: Counter[str] = Counter()

    def describe(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cost": self.cost,
            "requests_by_cost": {str(c): n for c, n in sorted(self.requests_by_cost.items())},
            "rate_limited": self.rate_limited,
            "deepest_page": self.deepest_page,
            "faults_injected": {k: self.faults_injected[k] for k in ("status", "slow", "drop", "truncate")},
            "by_stream": dict(self.by_stream),
            "writes_by_endpoint": dict(self.writes_by_endpoint),
            "writes_refused": dict(self.writes_refused),
        }


def _integer(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None


def _timestamp_us(raw: str) -> int:
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Simulator:
    """One simulated SalesLoft team: its data, its rate limit, its faults, its webhooks."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.live_paused = False  # POST /__sim/live: --live's activity held (a quiet team, to compare with)
        self.store = Store()
        populate(self.store, self.config)
        self.activity = Activity(self.store, self.config)
        self.limiter = RateLimiter(self.config.budget, self.config.window_seconds)
        self.faults = Faults(FaultSettings(rate=self.config.fault_rate), self.config.seed)
        self.webhooks = Webhooks(
            self.config.webhook_retry_seconds, self.config.webhook_duplicate_rate, self.config.seed,
            store=self.store, owner={"user_guid": self._me_guid(), "tenant_id": TEAM_ID},
        )
        self.store.listeners.append(self.webhooks.on_change)
        self.stats = Stats()
        self.writes = Writes(self.store, self.activity, self.config, self.webhooks.emit)
        self.oauth = OAuth(self.config)
        self.url: str | None = None
        self.app = self._build_app()

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def base_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the simulator is not serving; use `with simulator.serve():`")
        return f"{self.url}/v2"

    # -- serving -----------------------------------------------------------
    @contextlib.contextmanager
    def serve(self) -> Iterator[Simulator]:
        """Serves on loopback in a background thread for the duration of the block."""
        logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())
        with serve_in_thread(self.app, self.config.host, self.config.port, "simulator") as url:
            self.url = url
            try:
                yield self
            finally:
                self.url = None

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.webhooks.start()
        live = asyncio.create_task(self._live()) if self.config.live else None
        try:
            yield
        finally:
            if live is not None:
                live.cancel()
            await self.writes.stop()
            await self.webhooks.stop()

    async def _live(self) -> None:
        """With --live, applies `live_speed` seconds of activity every real second."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if not self.live_paused:
                self.activity.advance((now - last) * self.config.live_speed)
            last = now

    def _build_app(self) -> Starlette:
        routes = [
            Route("/__sim/stats", self._sim_stats, methods=["GET"]),
            Route("/__sim/stats/reset", self._sim_stats_reset, methods=["POST"]),
            Route("/__sim/truth/{stream}", self._sim_truth, methods=["GET"]),
            Route("/__sim/advance", self._sim_advance, methods=["POST"]),
            Route("/__sim/ties", self._sim_ties, methods=["POST"]),
            Route("/__sim/delete", self._sim_delete, methods=["POST"]),
            Route("/__sim/faults", self._sim_faults, methods=["GET", "POST"]),
            Route("/__sim/live", self._sim_live, methods=["GET", "POST"]),
            Route("/__sim/webhooks", self._sim_webhooks, methods=["GET"]),
            Route("/__sim/budget", self._sim_budget, methods=["POST"]),
            Route("/__sim/oauth", self.oauth.control, methods=["GET", "POST"]),
            Route("/__sim/bulk_jobs", self.writes.control, methods=["GET", "POST"]),
            Route("/oauth/token", self.oauth.token_endpoint, methods=["POST"]),
            Route("/v2/{path:path}", self._v2, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
        return Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={RequestError: self._refused},
        )

    @staticmethod
    async def _refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestError)
        return json_response(error.status, error.payload)

    # -- /v2 ---------------------------------------------------------------
    async def _v2(self, request: Request) -> Response:
        self.stats.requests += 1
        authorization = request.headers.get("authorization")
        if authorization != f"Bearer {self.config.api_key}" and not self.oauth.accepts(authorization):
            return json_response(401, {"error": "Unauthorized: the bearer token is missing or invalid"})
        path = request.path_params["path"].removesuffix(".json").strip("/")
        try:
            cost = self._cost(request, path)
        except RequestError as error:
            cost, early_error = 1, error
        else:
            early_error = None
        allowed, remaining = self.limiter.charge(cost)
        headers = {"x-ratelimit-endpoint-cost": str(cost), "x-ratelimit-remaining-minute": str(remaining)}
        if not allowed:
            self.stats.rate_limited += 1
            headers["x-ratelimit-endpoint-cost"] = "0"
            return json_response(429, {"error": "API rate limit exceeded"}, headers)
        self.stats.cost += cost
        self.stats.requests_by_cost[cost] += 1

        fault = self.faults.pick()
        if fault is not None:
            self.stats.faults_injected["status" if fault.isdigit() else fault] += 1
            if fault.isdigit():
                return json_response(int(fault), {"error": "Internal Server Error (simulated)"}, headers)
            if fault == "slow":
                await asyncio.sleep(self.faults.settings.slow_seconds)
        try:
            if early_error is not None:
                raise early_error
            response = await self._dispatch(request, path, headers)
        except RequestError as error:
            response = json_response(error.status, error.payload, headers)
        if fault == "drop":
            return DroppedResponse(response.body, headers=dict(response.headers))
        if fault == "truncate":
            return Response(
                response.body[: max(1, len(response.body) // 2)],
                status_code=response.status_code,
                headers=headers,
                media_type=JSON,
            )
        return response

    def _cost(self, request: Request, path: str) -> int:
        """A list request costs by page depth; everything else (an unpaged list too) costs 1."""
        if path in BY_PATH and BY_PATH[path].paged and request.method == "GET":
            page = _integer(request.query_params, "page", 1)
            self.stats.deepest_page = max(self.stats.deepest_page, page)
            return page_cost(max(page, 1))
        return 1

    async def _dispatch(self, request: Request, path: str, headers: dict[str, str]) -> Response:
        if path == "me":
            return self._me(request, headers)
        if path == "webhook_subscriptions" or path.startswith("webhook_subscriptions/"):
            return await self._subscriptions(request, path, headers)
        endpoint = self.writes.endpoint(request.method, path)
        if endpoint is not None:
            return await self._write(request, endpoint, path, headers)
        stream = BY_PATH.get(path)
        record_id = None
        if stream is None:
            head, _, tail = path.rpartition("/")
            stream, record_id = BY_PATH.get(head), tail
        if stream is None or (record_id is not None and stream.key != "id"):
            raise RequestError(404, {"error": "Not Found"})  # records without an id have no address
        self.stats.by_stream[stream.name] += 1
        if request.method != "GET":
            raise RequestError(405, {"error": "Method Not Allowed"})
        self._check_scope(stream)
        if record_id is None:
            return self._list(request, stream, headers)
        return self._record(request, stream, record_id, headers)

    def _check_scope(self, stream: SimStream) -> None:
        """A stream with its own scope (conversations, transcriptions) answers 403 to a key without it."""
        if stream.scope is not None and stream.scope not in self.config.privileged_scopes:
            # SalesLoft does not document its words for this refusal: these name the scope.
            raise RequestError(403, {"error": f"Forbidden: the API key lacks the {stream.scope} scope"})

    async def _write(self, request: Request, endpoint: str, path: str, headers: dict[str, str]) -> Response:
        """People, cadence memberships and bulk jobs (writes.py); counted in /__sim/stats."""
        if request.method != "GET":
            self.stats.writes_by_endpoint[endpoint] += 1
        try:
            return json_response(200, await self.writes.handle(request, endpoint, path), headers)
        except Refused as error:
            if request.method != "GET":
                self.stats.writes_refused[endpoint] += 1
            raise RequestError(error.status, error.payload) from None

    def _me_record(self) -> dict[str, Any] | None:
        """The key's user (the team's first)."""
        with self.store.lock:
            users = self.store.table("users")
            first = min(users.ids(), default=None)
            return users.get(first) if first is not None else None

    def _me_guid(self) -> str | None:
        record = self._me_record()
        return record.get("guid") if record else None

    def _me(self, request: Request, headers: dict[str, str]) -> Response:
        if request.method != "GET":
            raise RequestError(405, {"error": "Method Not Allowed"})
        record = self._me_record()
        if record is None:
            raise RequestError(404, {"error": "Not Found"})
        return json_response(200, {"data": record}, headers)

    def _record(self, request: Request, stream: SimStream, raw_id: str, headers: dict[str, str]) -> Response:
        subject = self._wants_subject(request, stream)
        with self.store.lock:
            table = self.store.table(stream.name)
            record_id = table.coerce_id(raw_id)
            blob = table.blobs.get(record_id) if record_id is not None else None
        if blob is None:
            raise RequestError(404, {"error": "Not Found"})
        if subject:
            blob = self._with_subject(blob)
        return Response(b'{"data":' + blob + b"}", headers=headers, media_type=JSON)

    def _wants_subject(self, request: Request, stream: SimStream) -> bool:
        """`scoped_fields[]=subject` on emails needs a privileged scope."""
        if stream.name != "emails" or "subject" not in request.query_params.getlist("scoped_fields[]"):
            return False
        if SUBJECT_SCOPE not in self.config.privileged_scopes:
            # SalesLoft's own answer, which does not name the scope.
            raise RequestError(
                422,
                {"error": "Requested scoped field(s) could not be returned, required scope access not included."},
            )
        return True

    @staticmethod
    def _with_subject(blob: bytes) -> bytes:
        record = orjson.loads(blob)
        record["subject"] = email_subject(record["id"])
        return orjson.dumps(record)

    def _list(self, request: Request, stream: SimStream, headers: dict[str, str]) -> Response:
        params = request.query_params
        page = max(1, _integer(params, "page", 1))
        per_page = min(MAX_PER_PAGE, max(1, _integer(params, "per_page", DEFAULT_PER_PAGE)))
        sort_by = params.get("sort_by") or stream.default_sort[0]
        sort_keys = SORT_KEYS + stream.sort_keys
        if sort_by not in sort_keys:
            raise invalid("sort_by", f"must be one of: {', '.join(sort_keys)}")
        direction = (params.get("sort_direction") or stream.default_sort[1]).upper()
        if direction not in ("ASC", "DESC"):
            raise invalid("sort_direction", "must be one of: ASC, DESC")
        subject = self._wants_subject(request, stream)

        filtering: dict[str, Any] = {}
        bounds: dict[str, int] = {}
        if stream.updated_at_filter:
            for op in ("gt", "gte", "lt", "lte"):
                raw = params.get(f"updated_at[{op}]")
                if raw is None:
                    continue
                try:
                    bounds[f"updated_{op}"] = _timestamp_us(raw)
                except ValueError:
                    raise invalid("updated_at", f"{op} must be an ISO-8601 timestamp") from None
                filtering.setdefault("updated_at", {})[op] = raw
        raw_ids = params.getlist("ids[]")
        window = self._event_window(stream, params, filtering)

        unpaged = stream.pages_only_with_page_param and "page" not in params
        with self.store.lock:
            table = self.store.table(stream.name)
            ids = None
            if raw_ids:
                filtering["ids"] = raw_ids
                ids = tuple(i for i in map(table.coerce_id, raw_ids) if i is not None)
            try:
                matching = self.writes.filter_ids(stream.name, params, filtering)
            except Refused as error:
                raise RequestError(error.status, error.payload) from None
            if window is not None:
                matching = window if matching is None else matching & window
            if matching is not None:
                ids = tuple(matching if ids is None else matching.intersection(ids))
            query = Query(
                **bounds,
                ids=ids,
                sort_by=sort_by,
                descending=direction == "DESC",
                offset=0 if unpaged else (page - 1) * per_page,
                limit=len(table) if unpaged else per_page,
            )
            blobs, total = table.query(query)
        if subject:
            blobs = [self._with_subject(b) for b in blobs]

        metadata: dict[str, Any] = {"filtering": filtering}
        if stream.has_paging_metadata:
            metadata["paging"] = self._paging(params, unpaged, page, per_page, len(blobs), total)
        metadata["sorting"] = {"sort_by": sort_by, "sort_direction": direction}
        body = b'{"metadata":' + orjson.dumps(metadata) + b',"data":[' + b",".join(blobs) + b"]}"
        return Response(body, headers=headers, media_type=JSON)

    def _event_window(self, stream: SimStream, params: Any, filtering: dict[str, Any]) -> set[Any] | None:
        """Calendar events: `start_time` bounds the event's end (inclusive), `end_time` its start (exclusive)."""
        if stream.name != "calendar_events":
            return None
        bounds = {}
        for name in ("start_time", "end_time"):
            raw = params.get(name)
            if raw is None:
                continue
            try:
                bounds[name] = _timestamp_us(raw)
            except ValueError:
                raise invalid(name, "must be an ISO-8601 timestamp") from None
            filtering[name] = raw
        if not bounds:
            return None
        lower, upper = bounds.get("start_time"), bounds.get("end_time")
        with self.store.lock:
            events = [orjson.loads(blob) for blob in self.store.table(stream.name).blobs.values()]
        return {
            e["id"] for e in events
            if (lower is None or _timestamp_us(e["end_time"]) >= lower)
            and (upper is None or _timestamp_us(e["start_time"]) < upper)
        }

    def _paging(
        self, params: Any, unpaged: bool, page: int, per_page: int, returned: int, total: int
    ) -> dict[str, Any]:
        if unpaged:  # one page holding every record
            return paging_metadata(params, 1, max(returned, 1), returned, total, exact_last_page=True)
        return paging_metadata(params, page, per_page, returned, total, self.config.exact_last_page)

    async def _subscriptions(self, request: Request, path: str, headers: dict[str, str]) -> Response:
        _, _, raw_id = path.partition("/")
        method = request.method
        if not raw_id:
            if method == "GET":
                # One list, no paging (SalesLoft documents only an `enabled` filter).
                self.stats.by_stream["webhook_subscriptions"] += 1
                data = [dict(s) for s in self.webhooks.subscriptions.values()]
                enabled = request.query_params.get("enabled")
                if enabled in ("true", "false"):
                    data = [s for s in data if s["enabled"] is (enabled == "true")]
                return json_response(200, {"data": data}, headers)
            if method == "POST":
                try:
                    created = self.webhooks.subscribe(await self._json_body(request))
                except ValueError as error:
                    raise RequestError(422, {"errors": error.args[0]}) from None
                return json_response(201, {"data": created}, headers)
            raise RequestError(405, {"error": "Method Not Allowed"})
        try:
            subscription_id = int(raw_id)
        except ValueError:
            raise RequestError(404, {"error": "Not Found"}) from None
        if method == "GET":
            found = self.webhooks.subscriptions.get(subscription_id)
            result = dict(found) if found else None
        elif method == "PUT":
            try:
                result = self.webhooks.update(subscription_id, await self._json_body(request))
            except ValueError as error:
                raise RequestError(422, {"errors": error.args[0]}) from None
        elif method == "DELETE":
            if not self.webhooks.unsubscribe(subscription_id):
                raise RequestError(404, {"error": "Not Found"})
            return Response(status_code=204, headers=headers)
        else:
            raise RequestError(405, {"error": "Method Not Allowed"})
        if result is None:
            raise RequestError(404, {"error": "Not Found"})
        return json_response(200, {"data": result}, headers)

    @staticmethod
    async def _json_body(request: Request) -> dict[str, Any]:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise RequestError(400, {"error": "The request body is not valid JSON"}) from None
        if not isinstance(payload, dict):
            raise RequestError(400, {"error": "The request body must be a JSON object"})
        return payload

    # -- /__sim ------------------------------------------------------------
    async def _sim_stats(self, request: Request) -> Response:
        stats = self.stats.describe()
        stats["webhook_deliveries"] = {
            key: self.webhooks.counters[key] for key in ("sent", "failed", "dropped", "duplicates")
        }
        stats["write_outcomes"] = dict(self.writes.outcomes)
        stats["budget"] = {
            "budget": self.limiter.budget,
            "window_seconds": self.limiter.window_seconds,
            "remaining": self.limiter.remaining(),
        }
        return json_response(200, stats)

    async def _sim_stats_reset(self, request: Request) -> Response:
        self.stats.reset()
        self.webhooks.counters.clear()
        self.writes.outcomes.clear()
        return json_response(200, self.stats.describe())

    async def _sim_truth(self, request: Request) -> Response:
        name = request.path_params["stream"]
        if name not in BY_NAME:
            return json_response(404, {"error": f"unknown stream {name!r}", "streams": sorted(BY_NAME)})
        full = request.query_params.get("full") in ("true", "1")
        with self.store.lock:
            table: Table = self.store.table(name)
            blobs = list(table.blobs.values())
            deleted = list(table.deleted)
        if full:
            body = b'{"stream":' + orjson.dumps(name) + b',"records":[' + b",".join(blobs) + b"],"
        else:
            # "id" is the store's key: the name for account types, which have no id.
            slim = [{"id": r[table.key], "updated_at": r.get("updated_at")} for r in map(orjson.loads, blobs)]
            body = b'{"stream":' + orjson.dumps(name) + b',"records":' + orjson.dumps(slim) + b","
        body += b'"deleted":' + orjson.dumps(deleted) + b"}"
        return Response(body, media_type=JSON)

    async def _sim_advance(self, request: Request) -> Response:
        payload = await self._sim_payload(request)
        seconds = payload.get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            return json_response(422, {"errors": {"seconds": ["must be a number >= 0"]}})
        return json_response(200, self.activity.advance(float(seconds)))

    async def _sim_ties(self, request: Request) -> Response:
        payload = await self._sim_payload(request)
        stream, count = payload.get("stream"), payload.get("count")
        if stream not in BY_NAME or not isinstance(count, int) or count < 1:
            return json_response(
                422, {"errors": {"stream": ["must be a stream name"], "count": ["must be an integer >= 1"]}}
            )
        updated_at, ids = make_ties(self.store, stream, count, payload.get("updated_at"))
        return json_response(200, {"updated_at": updated_at, "ids": ids})

    async def _sim_delete(self, request: Request) -> Response:
        payload = await self._sim_payload(request)
        stream = payload.get("stream")
        if stream not in BY_NAME:
            return json_response(422, {"errors": {"stream": ["must be a stream name"]}})
        table = self.store.table(stream)
        record_id = table.coerce_id(str(payload.get("id")))
        change = self.store.delete(stream, record_id) if record_id is not None else None
        if change is None:
            return json_response(404, {"error": "Not Found"})
        if stream == "notes":  # off the person's timeline too, as a live deletion (activity.py)
            self.store.delete("activity_histories", f"note-{record_id}")
        return json_response(200, {"deleted": change.record})

    async def _sim_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                settings = FaultSettings.model_validate(await self._sim_payload(request))
            except ValidationError as error:
                return json_response(422, {"errors": orjson.loads(error.json(include_url=False))})
            self.faults.apply(settings)
            self.limiter.external_spend = settings.external_spend
            if settings.spend_now:
                self.limiter.spend_now(settings.spend_now)
        return json_response(200, self.faults.describe())

    async def _sim_live(self, request: Request) -> Response:
        if request.method == "POST":
            paused = (await self._sim_payload(request)).get("paused")
            if not isinstance(paused, bool):
                return json_response(422, {"errors": {"paused": ["must be true or false"]}})
            self.live_paused = paused
        return json_response(200, {"live": self.config.live, "paused": self.live_paused})

    async def _sim_webhooks(self, request: Request) -> Response:
        return json_response(200, self.webhooks.describe())

    async def _sim_budget(self, request: Request) -> Response:
        payload = await self._sim_payload(request)
        try:
            self.limiter.configure(
                int(payload.get("budget", self.limiter.budget)),
                float(payload.get("window_seconds", self.limiter.window_seconds)),
            )
        except (TypeError, ValueError) as error:
            return json_response(422, {"errors": {"budget": [str(error)]}})
        return json_response(
            200, {"budget": self.limiter.budget, "window_seconds": self.limiter.window_seconds}
        )

    @staticmethod
    async def _sim_payload(request: Request) -> dict[str, Any]:
        body = await request.body()
        if not body:
            return {}
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RequestError(400, {"error": "the body is not valid JSON"}) from None
        if not isinstance(payload, dict):
            raise RequestError(400, {"error": "the body must be a JSON object"})
        return payload
