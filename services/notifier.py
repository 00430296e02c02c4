"""The notifier: delivers the outbox to Slack (``chat.postMessage``; ``chat.update`` when a
paged incident resolves), each page exactly once through Slack's failures.

Every post carries Slack message metadata naming what it delivers
(``{"event_type": "watchkeeper_page_posted", "event_payload": {"outbox_id": ...}}``; thread
replies and digests alike), so a post can be found again. Failures, and what follows:

- **429** (``Retry-After``) and **5xx**: Slack did not take the call. The notifier waits as
  ``Retry-After`` says (past the end of a pass too: no call to Slack before then), or backs
  off exponentially, and tries again.
- **No answer** (a timeout, a dropped connection): the post may have landed. Before posting
  it again, the notifier looks for it: ``conversations.history`` of its channel (a thread
  reply: ``conversations.replies`` of its thread) with ``include_all_metadata``, from a
  little before its first attempt (:data:`LOOKUP_MARGIN`), following the cursor for at most
  :data:`LOOKUP_PAGES` pages. Found: it is recorded as sent where it is (channel id and
  ts), not posted again. A channel configured by name is resolved to its id with
  ``conversations.list`` (cached, bounded paging); a name no channel has means the post
  cannot have landed.
- **The lookup fails** (any error, or more messages than the bound): that counts as a
  failed attempt and the message waits for a later attempt. It is never posted while the
  notifier cannot tell whether Slack has it: Slack has no idempotency key, and exactly once
  is the promise; a page held back this way shows its ``last_error`` (``lookup: ...``).
- **Refused** (any other Slack error, a message that cannot be built): not retried in the
  pass; after :data:`GIVE_UP_REFUSALS` refusals the message is left for a person.

Only refusals give a message up: while Slack is down or rate limiting, however long, every
message stays pending and goes out, once, on the first pass after Slack is back. A pass
does not hammer a Slack that is down: when a message has used its ``max_attempts``, each
message after it gets one attempt, and a second failure ends the pass (the rest wait, in
order, for the next one). Whether an attempt's outcome was unknown is read back from the
recorded attempts, so this holds across passes and restarts.

What remains: a crash between Slack's answer and the commit that records it (nothing says
the post was tried, so it is posted again), and a post that lands only after its lookup
found nothing (the backoff before the lookup gives Slack that time). The bot needs
``chat:write``, and for the lookups ``channels:history`` and ``channels:read`` (private
channels: ``groups:history``, ``groups:read``) and membership of the channel.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from alerts import escalate
from alerts.store import DeliveryStore, MessageKind, OutboxMessage
from config.errors import RetryableError
from config.file import OnCallSpec
from config.settings import SlackSettings
from services.health import Backoff, Readiness
from services.slack_blocks import page_message, resolved_message

log = logging.getLogger("watchkeeper.notifier")
DIGEST_LINES = 50  # findings per digest message
GIVE_UP_REFUSALS = 50  # a message Slack refused this often is left for a person (last_error)
LOOKUP_MARGIN = 300.0  # seconds around a message's unanswered attempts a lookup reads
SETTLE_TRIES = 5  # lookups of an unanswered digest before its lines are let go again
LOOKUP_PAGES = 5  # pages of PAGE_SIZE a lookup reads at most
PAGE_SIZE = 200  # Slack recommends no more than 200 items a page
EVENT_TYPES = {MessageKind.PAGE: "watchkeeper_page_posted",
               MessageKind.THREAD: "watchkeeper_thread_reply_posted"}
DIGEST_EVENT = "watchkeeper_digest_posted"
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
NO_ANSWER = "no answer from Slack"
REFUSED = ("Slack refused", "cannot deliver")
EVERY_MESSAGE = 2**31 - 1  # pending_messages' bound: the give-up is decided here


class Failure(Enum):
    """What a failed attempt says about the message."""

    BUSY = "busy"  # Slack did not take it (429, 5xx, unreachable) or its lookup failed
    UNKNOWN = "unknown"  # no answer: it may have landed; looked up before posting again
    REFUSED = "refused"  # Slack refused it, or it cannot be built


def failure_of(error: str) -> Failure:
    """The kind of a recorded attempt's error (the attempts keep their text only; these are
    the prefixes this module writes).

    >>> failure_of("no answer from Slack: timed out"), failure_of("Slack error 503")
    (<Failure.UNKNOWN: 'unknown'>, <Failure.BUSY: 'busy'>)
    >>> failure_of("Slack refused: invalid_auth"), failure_of("lookup: Slack error 500")
    (<Failure.REFUSED: 'refused'>, <Failure.BUSY: 'busy'>)
    """
    if error.startswith(NO_ANSWER):
        return Failure.UNKNOWN
    return Failure.REFUSED if error.startswith(REFUSED) else Failure.BUSY


class DeliveryError(Exception):
    """A call that failed; ``retryable`` says whether trying again may help, ``unknown``
    that the call may nevertheless have landed."""

    def __init__(self, message: str, *, retryable: bool, wait: float = 0.0,
                 unknown: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait
        self.unknown = unknown


class NotifierMetrics:
    """The notifier's Prometheus metrics (``watchkeeper notify --port``), in a registry of
    its own: the outbox's depth, delivery attempts, each message's outcome per pass, and
    whether it is ready (0 while its database is away)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.outbox = Gauge("watchkeeper_notifier_outbox_depth",
                            "messages waiting for Slack at the last pass", registry=r)
        self.attempts = Counter("watchkeeper_notifier_delivery_attempts",
                                "calls to Slack for outbox messages", registry=r)
        self.outcomes = Counter("watchkeeper_notifier_deliveries", "outbox messages per "
                                "pass, by outcome (sent, refused, busy, waiting)",
                                ["outcome"], registry=r)
        self.ready = Gauge("watchkeeper_notifier_ready", "1 while it delivers, 0 while its "
                           "database is away", registry=r)
        self.ready.set(1)
        ProcessCollector(registry=r)


class Outcome(Enum):
    SENT = "sent"
    REFUSED = "refused"  # refused, or a lookup that cannot succeed now: next pass
    BUSY = "busy"  # its attempts used up while Slack failed: next pass
    WAITING = "waiting"  # not ready (a reply before its page), or given up


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    attempts: int = 0
    found: int = 0  # of ``sent``: found in Slack after an unknown outcome, not posted again


@dataclass(frozen=True, slots=True)
class Post:
    """One chat.postMessage, and the metadata that finds it again."""

    channel: str
    text: str
    event_type: str
    outbox_id: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "event_payload": {"outbox_id": self.outbox_id}}


@dataclass
class _UnsureDigest:
    since: float
    incident_ids: list[str] = field(default_factory=list)
    tries: int = 0  # lookups made


def slack_client(settings: SlackSettings, timeout: float = 10) -> WebClient:
    # retries are ours (counted and recorded), so the SDK's own handlers are off; urllib
    # takes a float timeout (the SDK annotates int)
    return WebClient(token=settings.reveal("bot_token"), base_url=settings.api_url,
                     timeout=timeout, retry_handlers=[])  # type: ignore[arg-type]


class Notifier:
    def __init__(self, store: DeliveryStore, client: WebClient, settings: SlackSettings, *,
                 oncall: OnCallSpec | None = None, max_attempts: int = 5,
                 base_delay: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time,
                 metrics: NotifierMetrics | None = None) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.oncall = oncall
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.sleep = sleep
        self.clock = clock
        self._not_before = 0.0  # Retry-After: no call to Slack before then
        self.metrics = metrics if metrics is not None else NotifierMetrics()
        # messages Slack took whose record the database did not (it went away): outbox id
        # -> (when, where); recorded first on the next pass
        self._unrecorded: dict[str, tuple[datetime, tuple[str, str] | None]] = {}
        # outbox id -> when its unanswered attempts were (also in delivery_attempts, unless
        # the database could not take them)
        self._unanswered: dict[str, list[float]] = {}
        self._channel_ids: dict[str, str] = {}  # a configured channel -> its id
        self._unsure_digests: dict[str, _UnsureDigest] = {}

    def mention(self, level: int) -> str | None:
        """Who a page of this escalation level wakes: the primary on call, then the
        secondary, then everyone in the channel."""
        if self.oncall is None:
            return "!channel" if level >= 2 else None
        shift = self.oncall.on_call(datetime.fromtimestamp(self.clock(), tz=UTC))
        return (shift.primary, shift.secondary, "!channel")[min(level, escalate.LAST_LEVEL)]

    def send_digest(self, every_seconds: float) -> int:
        """Post the digest when it is due: every incident routed to the digest, not paged
        and not digested yet. Each is marked digested only once Slack has taken the
        message that carries it, so none is lost (late data included: the window is not a
        time range). A digest message whose post had no answer is looked up (by its
        metadata) before the next digest is made, and what it carried is marked digested
        if Slack has it (this memory is the process's: a restart in between may post those
        lines again). Returns how many went out (0 when not due or empty)."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        last = self.store.digest_sent_at()
        if last is not None and (now - last).total_seconds() < every_seconds:
            return 0
        if self.clock() < self._not_before:
            return 0
        try:
            self._settle_digests(now)
        except DeliveryError as exc:
            log.warning("digest not sent (will retry): lookup: %s", exc)
            return 0
        incidents = self.store.digest_items()
        sent = 0
        for start in range(0, len(incidents), DIGEST_LINES):
            chunk = incidents[start:start + DIGEST_LINES]
            lines = [f"• `{i.model_id}` {i.summary} (severity {i.severity:.2f})"
                     for i in chunk]
            text = (f":newspaper: Watchkeeper digest: {len(incidents)} finding(s) that did "
                    "not need a page" + (f" ({start + 1}-{start + len(chunk)})"
                                          if len(incidents) > DIGEST_LINES else "")
                    + "\n" + "\n".join(lines))
            ids = [i.incident_id for i in chunk]
            digest_id = "digest-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20]
            started = self.clock()
            try:
                self._post(Post(self.settings.channel, text, DIGEST_EVENT, digest_id))
            except DeliveryError as exc:
                if exc.unknown:
                    self._unsure_digests[digest_id] = _UnsureDigest(started, ids)
                if exc.wait:
                    self._not_before = max(self._not_before, self.clock() + exc.wait)
                log.warning("digest not sent (will retry): %s", exc)
                return sent
            # posted: if the database cannot take that now, the lookup settles it later
            self._unsure_digests[digest_id] = _UnsureDigest(started, ids)
            self.store.mark_digested(ids, now)
            del self._unsure_digests[digest_id]
            sent += len(chunk)
        self.store.record_digest(now)
        return sent

    def _settle_digests(self, now: datetime) -> None:
        """Mark what the digest messages of unknown outcome carried digested, for those
        Slack has; forget those it has not (their lines go out again)."""
        for digest_id, unsure in list(self._unsure_digests.items()):
            post = Post(self.settings.channel, "", DIGEST_EVENT, digest_id)
            unsure.tries += 1
            try:
                where = self._find(post, unsure.since)
            except DeliveryError:
                if unsure.tries < SETTLE_TRIES:
                    raise
                log.warning("digest %s: still cannot tell whether Slack has it after %d "
                            "lookups: its lines go out again", digest_id, unsure.tries)
                where = None
            if where is not None:
                log.info("digest %s was in Slack after all: not posted again", digest_id)
                self.store.mark_digested(unsure.incident_ids, now)
            del self._unsure_digests[digest_id]

    def escalate(self) -> int:
        """Re-page incidents whose latest page nobody acknowledged within the SLA
        (:mod:`alerts.escalate`). Returns how many were queued."""
        if self.oncall is None:
            return 0
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        timeout = self.oncall.ack_timeout_seconds
        due = escalate.due(self.store.escalation_candidates(), now=now.timestamp(),
                           ack_timeout=timeout)
        for page in due:
            self.store.queue_escalation(page, now)
            log.warning("incident %s: not acknowledged in %.0f s, escalated to level %d",
                        page.incident_id, timeout, page.level + 1)
        return len(due)

    def deliver_pending(self, report: Report | None = None) -> Report:
        """Deliver every unsent outbox message, pages first, oldest first; stop when Slack
        is down (a message used its attempts and the next one failed too) or asked to
        wait (``Retry-After``): the rest go on a later pass. Counts into ``report`` as it
        goes (what a pass did stays counted if the database fails it)."""
        report = report if report is not None else Report()
        down = False
        for message_id, (at, where) in list(self._unrecorded.items()):
            self.store.record_attempt(message_id, at, error=None, posted=where)
            del self._unrecorded[message_id]
            report.sent += 1
        pending = self.store.pending_messages(EVERY_MESSAGE)
        self.metrics.outbox.set(len(pending))
        for message_id in pending:
            if self.clock() < self._not_before:
                break
            tried = report.attempts
            outcome = self._deliver_one(message_id, report,
                                        tries=1 if down else self.max_attempts)
            self.metrics.attempts.inc(report.attempts - tried)
            self.metrics.outcomes.labels(outcome=outcome.name.lower()).inc()
            if outcome is Outcome.SENT:
                report.sent += 1
                down = False
            elif outcome is Outcome.REFUSED:
                report.failed += 1
            elif outcome is Outcome.BUSY:
                report.failed += 1
                if down:
                    log.warning("Slack is failing: the other messages wait for the next pass")
                    break
                down = True
        return report

    def _ready(self, msg: OutboxMessage) -> bool:
        """Whether a message can go now: a thread reply waits for its page to be in Slack,
        an incident's resolution for all its pages to be out (then it updates them)."""
        if msg.incident_id is None:
            return True
        if msg.kind is MessageKind.THREAD:
            return bool(self.store.posted_pages(msg.incident_id))
        if msg.kind is MessageKind.RESOLVE:
            return self.store.undelivered_pages(msg.incident_id) == 0
        return True

    def _deliver_one(self, message_id: str, report: Report, *, tries: int) -> Outcome:
        history = self.store.delivery_attempts(message_id)
        failures = [failure_of(error) for _, error in history if error is not None]
        if failures.count(Failure.REFUSED) >= GIVE_UP_REFUSALS:
            return Outcome.WAITING  # left for a person
        try:
            msg = self.store.message(message_id)
        except ValueError as exc:  # a row this version cannot read: left for a person
            self.store.record_attempt(message_id, datetime.fromtimestamp(self.clock(), tz=UTC),
                                      error=f"cannot deliver: {exc}")
            report.attempts += 1
            return Outcome.REFUSED
        if not self._ready(msg):
            return Outcome.WAITING
        unanswered = [at.timestamp() for at, error in history
                      if error is not None and failure_of(error) is Failure.UNKNOWN]
        unanswered += self._unanswered.get(message_id, [])
        for attempt in range(tries):
            report.attempts += 1
            started = self.clock()
            try:
                try:
                    where, found = self._attempt(
                        msg, window=(min(unanswered), max(unanswered)) if unanswered else None)
                except DeliveryError:
                    raise
                except Exception as exc:  # a bad row or payload must not stop the others
                    raise DeliveryError(f"cannot deliver: {type(exc).__name__}: {exc}",
                                        retryable=False) from exc
            except DeliveryError as exc:
                if exc.unknown:
                    # kept here too: if the database cannot take the record, the next
                    # pass still knows to look before posting
                    self._unanswered.setdefault(message_id, []).append(started)
                    unanswered.append(started)
                self.store.record_attempt(message_id, datetime.fromtimestamp(started, tz=UTC),
                                          error=str(exc))
                log.warning("outbox %s: attempt %d failed: %s", message_id, attempt + 1, exc)
                if not exc.retryable:
                    self._unanswered.pop(message_id, None)
                    return Outcome.REFUSED
                if attempt + 1 < tries:
                    self.sleep(exc.wait or self.base_delay * 2 ** attempt)
                elif exc.wait:
                    self._not_before = max(self._not_before, self.clock() + exc.wait)
                continue
            if found:
                report.found += 1
                log.info("outbox %s: was in Slack after all (%s): not posted again",
                         message_id, where)
            done = (datetime.fromtimestamp(started, tz=UTC),
                    where if msg.kind is MessageKind.PAGE else None)
            try:
                self.store.record_attempt(message_id, done[0], error=None, posted=done[1])
            except RetryableError:
                # in Slack but not in the database, which went away: remembered here and
                # recorded before anything else once it is back (never posted again)
                self._unrecorded[message_id] = done
                raise
            finally:
                self._unanswered.pop(message_id, None)
            return Outcome.SENT
        return Outcome.BUSY

    def _attempt(self, msg: OutboxMessage, *, window: tuple[float, float] | None
                 ) -> tuple[tuple[str, str] | None, bool]:
        """One attempt: where the message is now, and whether it was found already there
        (looked up first when ``window``, its first and last unanswered attempts, says an
        earlier attempt may have landed)."""
        if msg.kind is MessageKind.RESOLVE:  # chat.update: the same call twice is harmless
            assert msg.incident_id is not None
            for posted in self.store.posted_pages(msg.incident_id):  # the page, escalations
                text, blocks = resolved_message(posted.summary)
                with _slack_errors():
                    self.client.chat_update(channel=posted.slack_channel, ts=posted.slack_ts,
                                            text=text, blocks=blocks)
            return None, False
        post = self._compose(msg)
        if window is not None:
            try:
                where = self._find(post, *window)
            except DeliveryError as exc:
                raise DeliveryError(f"lookup: {exc}", retryable=exc.retryable,
                                    wait=exc.wait) from None
            if where is not None:
                return where, True
        return self._post(post), False

    def _compose(self, msg: OutboxMessage) -> Post:
        event = EVENT_TYPES[msg.kind]
        if msg.kind is MessageKind.PAGE:
            assert msg.page_id is not None
            page, lead = self.store.page_content(msg.page_id)
            text, blocks = page_message(page, lead, self.settings.console_url,
                                        mention=self.mention(page["escalation_level"]))
            return Post(page["channel"] or self.settings.channel, text, event,
                        msg.message_id, blocks=blocks)
        assert msg.incident_id is not None
        root = self.store.posted_pages(msg.incident_id)[0]
        lines = "\n".join(f"• {line}" for line in msg.payload["summaries"])
        return Post(root.slack_channel,
                    f":repeat: still firing ({msg.payload['alerts']} alert(s)):\n{lines}",
                    event, msg.message_id, thread_ts=root.slack_ts)

    def _post(self, post: Post) -> tuple[str, str]:
        kwargs: dict[str, Any] = {"blocks": post.blocks} if post.blocks is not None else {}
        if post.thread_ts is not None:
            kwargs["thread_ts"] = post.thread_ts
        with _slack_errors():
            resp = self.client.chat_postMessage(channel=post.channel, text=post.text,
                                                metadata=post.metadata, **kwargs)
        self._channel_ids[post.channel] = str(resp["channel"])
        return str(resp["channel"]), str(resp["ts"])

    def _find(self, post: Post, since: float, until: float | None = None
              ) -> tuple[str, str] | None:
        """Where Slack has ``post`` (channel id and ts), by its metadata, among the messages
        from :data:`LOOKUP_MARGIN` seconds before ``since`` (its first unanswered attempt)
        to as long after ``until`` (its last; default ``since``), so that a busy channel
        does not push it out of reach as time goes by; None when it has not."""
        channel = self._channel_id(post.channel)
        if channel is None:
            return None
        last = since if until is None else until
        args: dict[str, Any] = {"channel": channel, "oldest": f"{since - LOOKUP_MARGIN:.6f}",
                                "latest": f"{last + LOOKUP_MARGIN:.6f}",
                                "include_all_metadata": True, "limit": PAGE_SIZE}
        method: Callable[..., Any] = self.client.conversations_history
        if post.thread_ts is not None:
            method, args["ts"] = self.client.conversations_replies, post.thread_ts
        for messages in self._pages(method, "messages", **args):
            for message in messages:
                metadata = message.get("metadata") or {}
                if (metadata.get("event_type") == post.event_type
                        and (metadata.get("event_payload") or {}).get("outbox_id")
                        == post.outbox_id):
                    return channel, str(message["ts"])
        return None

    def _channel_id(self, channel: str) -> str | None:
        """A channel's id (conversations.history needs one) from an id or a name; None when
        no channel the bot can see has that name."""
        if CHANNEL_ID.fullmatch(channel):
            return channel
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        name = channel.removeprefix("#")
        for channels in self._pages(self.client.conversations_list, "channels",
                                    types="public_channel,private_channel",
                                    exclude_archived=True, limit=PAGE_SIZE):
            for found in channels:
                self._channel_ids.setdefault("#" + found["name"], found["id"])
                if found["name"] == name:
                    self._channel_ids[channel] = found["id"]
                    return str(found["id"])
        return None

    @staticmethod
    def _pages(method: Callable[..., Any], key: str, **args: Any
               ) -> Iterator[list[dict[str, Any]]]:
        """The pages of a cursor-paginated call (the SDK's response follows
        ``response_metadata.next_cursor``), at most :data:`LOOKUP_PAGES` of them: one more
        is an error (the answer is not complete)."""
        with _slack_errors():
            for n, page in enumerate(method(**args)):
                yield list(page.get(key) or [])
                if n + 1 == LOOKUP_PAGES and (page.get("response_metadata") or {}).get(
                        "next_cursor"):
                    raise DeliveryError(f"more than {LOOKUP_PAGES * PAGE_SIZE} {key} to "
                                        "read: cannot tell", retryable=False)


@contextmanager
def _slack_errors() -> Iterator[None]:
    """Slack's failures as :class:`DeliveryError`: whether to retry, how long to wait, and
    whether the call may have landed all the same."""
    try:
        yield
    except SlackApiError as exc:
        status = exc.response.status_code
        if status == 429:
            wait = float(exc.response.headers.get("Retry-After", "1") or 1)
            raise DeliveryError("rate limited (429)", retryable=True, wait=wait) from None
        if status >= 500:
            raise DeliveryError(f"Slack error {status}", retryable=True) from None
        raise DeliveryError(f"Slack refused: {exc.response.get('error')}",
                            retryable=False) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):  # it never reached Slack
            raise DeliveryError(f"Slack unreachable: {exc.reason}", retryable=True) from None
        raise DeliveryError(f"{NO_ANSWER}: {exc.reason}", retryable=True,
                            unknown=True) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        if isinstance(exc, ConnectionRefusedError):
            raise DeliveryError(f"Slack unreachable: {exc}", retryable=True) from None
        # no answer, or one cut short: the call may have landed
        raise DeliveryError(f"{NO_ANSWER}: {exc or type(exc).__name__}", retryable=True,
                            unknown=True) from None


def run_notifier(store: DeliveryStore, settings: SlackSettings, *, once: bool,
                 interval: float = 5.0, oncall: OnCallSpec | None = None,
                 digest_every: float = 24 * 3600, readiness: Readiness | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rounds: int | None = None, metrics: NotifierMetrics | None = None) -> Report:
    """Deliver pending messages, escalations and the digest when due; once, or every
    ``interval`` seconds (``rounds``: that many, for tests).

    While the database is away (:class:`config.errors.RetryableError`), the round stops
    where it is, ``readiness`` says not ready, and the next round comes after a backoff
    (0.5 s doubling to 30 s) instead of ``interval``: nothing is lost (the outbox is in the
    database), and what a round had sent is recorded there before the next one. With
    ``once``, the error goes to the caller."""
    notifier = Notifier(store, slack_client(settings), settings, oncall=oncall,
                        metrics=metrics)
    readiness = readiness if readiness is not None else Readiness()
    notifier.metrics.ready.set_function(lambda: float(readiness.ready))
    total = Report()
    backoff = Backoff()
    done = 0
    while True:
        try:
            _round(notifier, digest_every, total)
        except RetryableError as exc:
            if once:
                raise
            delay = backoff.next()
            log.warning("the database is away (next round in %.1f s): %s", delay, exc)
            readiness.unready(str(exc))
        else:
            backoff.reset()
            delay = interval
            readiness.recovered()
            if once:
                return total
        done += 1
        if rounds is not None and done >= rounds:
            return total
        sleep(delay)


def _round(notifier: Notifier, digest_every: float, report: Report) -> None:
    """The digest when due, the pending messages, escalations and theirs, into ``report``."""
    notifier.send_digest(digest_every)
    notifier.deliver_pending(report)
    if notifier.escalate():
        notifier.deliver_pending(report)
