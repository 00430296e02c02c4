"""The web console: pages rendered on the server (Jinja2), where on-call lands from a
Slack page's "Open the alert" and where a team reviews its week.

``/`` open incidents and the latest alerts; ``/alerts`` every alert, filtered (model,
kind, status, raised between) and paginated by keyset; ``/alerts/{id}`` one alert (evidence,
score factors, occurrences, pages and escalations, acknowledgements, feedback) with its
actions; ``/models/{id}`` model health from the statistic snapshots; ``/silences``
(create, expire). Sign-in and CSRF: :mod:`services.console.auth`. Charts are drawn by uPlot
(vendored in ``static/``, MIT) from a JSON data block; no inline script.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import Counter
from starlette.middleware.sessions import SessionMiddleware

from alerts.actions import Action
from alerts.fingerprint import stable_id
from alerts.model import Status
from alerts.store import (
    ActionStore,
    AlertFilter,
    Cursor,
    HistoryStore,
    SilenceRecord,
)
from config.errors import RetryableError
from config.kinds import Kind
from config.settings import ConsoleSettings
from services.console.auth import Auth, FailedSignIns, safe_next, session_key
from services.console.charts import health_sections

__all__ = ["console_app"]

HERE = Path(__file__).parent
PAGE = 50  # rows per page of a list
MAX_POINTS = 20_000  # snapshots drawn on one model page (the latest, when there are more)
DEFAULT_DAYS = 7  # the model page's range: this many days up to its last snapshot


class ConsoleStore(ActionStore, HistoryStore, Protocol):
    """What the console reads and does."""


class SignIn(Exception):
    """Not signed in: go to the sign-in page, then back to ``next``."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class BadInput(ValueError):
    """A filter or form value the console cannot use (answered with 400)."""


def when(dt: datetime | str | None) -> str:
    """A stored time as the console shows it: UTC to the second.

    >>> when(datetime(2019, 3, 1, 2, 30, 24, 5, tzinfo=UTC)), when(None)
    ('2019-03-01 02:30:24Z', '')
    >>> when("2019-03-01 02:30:24.000000")  # SQLite's text
    '2019-03-01 02:30:24Z'
    """
    if dt is None:
        return ""
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%SZ")


def num(value: Any) -> str:
    """A number, short: ``0.8499`` not ``0.849917``; anything else as text.

    >>> num(0.849917), num(8.283089), num(11320.0), num(12345.67), num(True), num("x")
    ('0.8499', '8.283', '11320', '12345.7', 'True', 'x')
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def parse_time(text: str | None) -> datetime | None:
    """A filter's time: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM`` (UTC unless it says), or none.

    >>> parse_time("2019-03-01T02:30"), parse_time("")
    (datetime.datetime(2019, 3, 1, 2, 30, tzinfo=datetime.timezone.utc), None)
    """
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"not a time: {text!r} (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    at, sep, key = text.partition("|")
    moment = parse_time(at)
    if not sep or moment is None:
        raise BadInput("not a page cursor")
    return Cursor(moment, key)


def cursor_text(cursor: Cursor | None) -> str | None:
    return None if cursor is None else f"{cursor.at.isoformat()}|{cursor.key}"


def signed_in(request: Request) -> str:
    """The signed-in person (a dependency of every page); :class:`SignIn` when nobody."""
    user: str | None = request.app.state.auth.user(request)
    if user is None:
        raise SignIn(request.url.path + (f"?{request.url.query}" if request.url.query
                                         else ""))
    return user


User = Annotated[str, Depends(signed_in)]


def console_app(store: ConsoleStore, settings: ConsoleSettings, *, api_token: str | None,
                actions: Counter, logins: Counter, clock: Any) -> FastAPI:
    """The console as an app of its own (mounted at ``/`` by :func:`services.api.build_api`):
    its own session middleware, so the Slack and HTTP API endpoints have no cookies."""
    auth = Auth(settings, api_token)
    failures = FailedSignIns(settings.sign_in_failures, settings.sign_in_window)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(when=when, num=num)
    templates.env.globals.update(statuses=[s.value for s in Status],
                                 kinds=[k.value for k in Kind], actions=list(Action))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.auth = auth
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def now() -> datetime:
        return datetime.fromtimestamp(clock(), tz=UTC)

    def render(request: Request, template: str, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        context.update(user=auth.user(request), csrf=auth.csrf_token(request))
        return templates.TemplateResponse(request, template, context,
                                          status_code=status_code)

    @app.exception_handler(SignIn)
    async def to_sign_in(_: Request, exc: SignIn) -> Response:
        return RedirectResponse(f"/login?{urlencode({'next': exc.next_path})}",
                                status_code=303)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> Response:
        return render(request, "error.html", 400, title="Bad request", message=str(exc))

    @app.exception_handler(RetryableError)
    async def database_away(request: Request, exc: RetryableError) -> Response:
        return render(request, "error.html", 503, title="Database unavailable",
                      message=str(exc))

    async def form_checked(request: Request) -> dict[str, str]:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not auth.csrf_ok(request, fields.get("csrf")):
            raise BadInput("this form has expired or did not come from this console: "
                           "reload the page and try again")
        return fields

    # -- signing in ------------------------------------------------------------------------
    @app.get("/login")
    async def login_page(request: Request, next: str = "/") -> Response:
        return render(request, "login.html", next=safe_next(next),
                      can_sign_in=auth.can_sign_in, error=None)

    def too_many(request: Request, target: str, wait: int) -> Response:
        logins.labels("limited").inc()
        page = render(request, "login.html", 429, next=target, can_sign_in=auth.can_sign_in,
                      error=f"too many failed sign-ins from here: try again in {wait} s")
        page.headers["Retry-After"] = str(wait)
        return page

    @app.post("/login")
    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        fields = await form_checked(request)
        target = safe_next(fields.get("next"))
        if (wait := failures.retry_after(client, clock())) is not None:  # even the token
            return too_many(request, target, wait)
        name = fields.get("name", "").strip()[:100]
        if not auth.token_matches(fields.get("token", "")) or not name:
            logins.labels("refused").inc()
            failures.failed(client, clock())
            return render(request, "login.html", 401, next=target,
                          can_sign_in=auth.can_sign_in,
                          error="a name and the right API token, please")
        logins.labels("ok").inc()
        failures.succeeded(client)
        auth.sign_in(request, name)
        return RedirectResponse(target, status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await form_checked(request)
        auth.sign_out(request)
        return RedirectResponse("/login", status_code=303)

    # -- lists -----------------------------------------------------------------------------
    @app.get("/")
    async def overview(request: Request, user: User) -> Response:
        incidents, more = await asyncio.to_thread(store.incidents_page, limit=PAGE)
        alerts, _ = await asyncio.to_thread(store.alerts_page, AlertFilter(status="open"),
                                            limit=PAGE)
        models = await asyncio.to_thread(store.model_ids)
        return render(request, "overview.html", incidents=incidents,
                      more_incidents=more is not None, alerts=alerts, models=models)

    @app.get("/alerts")
    async def alert_list(request: Request, user: User, model: str = "", kind: str = "",
                         status: str = "", since: str = "", until: str = "",
                         after: str = "") -> Response:
        if kind and kind not in set(Kind):
            raise BadInput(f"unknown kind {kind!r}")
        if status and status not in set(Status):
            raise BadInput(f"unknown status {status!r}")
        where = AlertFilter(model or None, kind or None, status or None, parse_time(since),
                            parse_time(until))
        rows, nxt = await asyncio.to_thread(store.alerts_page, where, limit=PAGE,
                                            after=parse_cursor(after))
        query = {k: v for k, v in (("model", model), ("kind", kind), ("status", status),
                                   ("since", since), ("until", until)) if v}
        next_url = None if nxt is None else "/alerts?" + urlencode(
            {**query, "after": cursor_text(nxt)})
        models = await asyncio.to_thread(store.model_ids)
        return render(request, "alerts.html", alerts=rows, filters=query, models=models,
                      next_url=next_url, first_url="/alerts?" + urlencode(query)
                      if after else None)

    @app.get("/incidents")
    async def incident_list(request: Request, user: User, model: str = "",
                            show: str = "open", after: str = "") -> Response:
        rows, nxt = await asyncio.to_thread(
            store.incidents_page, model=model or None, unresolved=show != "all",
            limit=PAGE, after=parse_cursor(after))
        query = {k: v for k, v in (("model", model), ("show", show)) if v}
        next_url = None if nxt is None else "/incidents?" + urlencode(
            {**query, "after": cursor_text(nxt)})
        return render(request, "incidents.html", incidents=rows, show=show, model=model,
                      next_url=next_url)

    # -- one alert -------------------------------------------------------------------------
    @app.get("/alerts/{alert_id}")
    async def alert_page(request: Request, alert_id: str, user: User,
                         done: str = "") -> Response:
        record = await asyncio.to_thread(store.alert_record, alert_id)
        if record is None:
            return render(request, "error.html", 404, title="No such alert",
                          message=f"there is no alert {alert_id}")
        timeline = {"id": "occurrences", "title": f"{record.alert['statistic']} at each "
                    "occurrence", "x": [o["ts"].replace(tzinfo=o["ts"].tzinfo or UTC)
                                        .timestamp() for o in record.occurrences],
                    "series": [{"label": record.alert["statistic"], "role": "value",
                                "values": [o["value"] for o in record.occurrences]},
                               {"label": "threshold", "role": "threshold",
                                "values": [o["threshold"] for o in record.occurrences]}],
                    "bands": []}
        done_action = Action(done) if done in set(Action) else None
        return render(request, "alert.html", r=record, a=record.alert, done=done_action,
                      charts={"charts": [timeline]},
                      evidence=sorted((record.alert.get("evidence") or {}).items()))

    @app.post("/alerts/{alert_id}/act")
    async def alert_action(request: Request, alert_id: str, user: User) -> Response:
        fields = await form_checked(request)
        try:
            chosen = Action.parse(fields.get("action", ""))
            hours = float(fields.get("hours") or 24)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        if not 0 < hours <= 24 * 90:
            raise BadInput("silence for between a minute and 90 days")
        result = await asyncio.to_thread(store.act, alert_id, chosen, user, now(),
                                         note=fields.get("note", "")[:2000],
                                         silence_for=hours * 3600)
        if result is None:
            return render(request, "error.html", 404, title="No such alert",
                          message=f"there is no alert {alert_id}")
        actions.labels(chosen.value, "console").inc()
        return RedirectResponse(f"/alerts/{quote(alert_id)}?done={chosen.value}",
                                status_code=303)

    # -- model health ----------------------------------------------------------------------
    @app.get("/models/{model_id}")
    async def model_page(request: Request, model_id: str, user: User, since: str = "",
                         until: str = "") -> Response:
        span = await asyncio.to_thread(store.snapshot_span, model_id)
        end = parse_time(until) or (span[1] if span else now())
        start = parse_time(since) or (
            max(span[0], end - timedelta(days=DEFAULT_DAYS)) if span else end)
        snaps, truncated = await asyncio.to_thread(store.snapshots, model_id, start, end,
                                                   limit=MAX_POINTS)
        alerts = await asyncio.to_thread(store.model_alerts, model_id, start, end)
        sections = health_sections(snaps, [(a["fingerprint"], a["first_seen"], a["last_seen"])
                                           for a in alerts])
        data = {"range": [start.timestamp(), end.timestamp()],
                "charts": [c.to_json() for s in sections for c in s.charts]}
        return render(request, "model.html", model_id=model_id, sections=sections,
                      charts=data, since=start, until=end, truncated=truncated,
                      points=len(snaps), alerts=alerts)

    # -- silences --------------------------------------------------------------------------
    @app.get("/silences")
    async def silence_list(request: Request, user: User) -> Response:
        at = now()
        rows = await asyncio.to_thread(store.silences, at)
        return render(request, "silences.html", silences=rows, now=at)

    @app.post("/silences")
    async def silence_create(request: Request, user: User) -> Response:
        fields = await form_checked(request)
        kind = fields.get("kind") or None
        if kind is not None and kind not in set(Kind):
            raise BadInput(f"unknown kind {kind!r}")
        try:
            hours = float(fields.get("hours") or 24)
        except ValueError:
            raise BadInput("hours: a number") from None
        if not 0 < hours <= 24 * 90:
            raise BadInput("silence for between a minute and 90 days")
        model, subject = (fields.get("model", "").strip() or None,
                          fields.get("subject", "").strip() or None)
        if model is None and kind is None and subject is None:
            raise BadInput("a silence names a model, a kind or a subject (or several)")
        at = now()
        await asyncio.to_thread(store.add_silence, SilenceRecord(
            stable_id("console-silence", user, at.isoformat(), model, kind, subject),
            model, kind, subject, at, at + timedelta(hours=hours), user,
            fields.get("comment", "")[:2000]))
        return RedirectResponse("/silences", status_code=303)

    @app.post("/silences/{silence_id}/expire")
    async def silence_expire(request: Request, silence_id: str, user: User) -> Response:
        await form_checked(request)
        if not await asyncio.to_thread(store.expire_silence, silence_id, now()):
            return render(request, "error.html", 404, title="No such silence",
                          message=f"there is no silence {silence_id}")
        return RedirectResponse("/silences", status_code=303)

    app.add_middleware(SessionMiddleware, secret_key=session_key(settings, api_token),
                       session_cookie="watchkeeper_session",
                       max_age=int(settings.session_hours * 3600), same_site="lax",
                       https_only=settings.secure_cookies)
    return app
