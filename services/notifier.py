"""The notifier: delivers the outbox to Slack (``chat.postMessage``; ``chat.update`` when a
paged incident resolves).

Retries a call on 429 (waiting as ``Retry-After`` says), on 5xx and on timeouts or lost
connections, with exponential backoff; every attempt is counted on its outbox row with the
last error. A message is marked sent in the same transaction that records where Slack put
it, so a restart never posts what was already posted (the one window left is a crash
between Slack's answer and that commit). A timed-out call may nevertheless have landed:
Slack has no idempotency key, so retrying a timeout can post a page twice; we take that
over losing a page.
"""

from __future__ import annotations

import logging
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from alerts import escalate
from alerts.store import DeliveryStore, MessageKind, OutboxMessage
from config.file import OnCallSpec
from config.settings import SlackSettings
from services.slack_blocks import page_message, resolved_message

log = logging.getLogger("watchkeeper.notifier")
DIGEST_LINES = 50  # findings per digest message
GIVE_UP_ATTEMPTS = 50  # a message that failed this often is left for a person (last_error)


class DeliveryError(Exception):
    """A call that failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, wait: float = 0.0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    attempts: int = 0


def slack_client(settings: SlackSettings, timeout: int = 10) -> WebClient:
    # retries are ours (counted and recorded), so the SDK's own handlers are off
    return WebClient(token=settings.bot_token, base_url=settings.api_url, timeout=timeout,
                     retry_handlers=[])


class Notifier:
    def __init__(self, store: DeliveryStore, client: WebClient, settings: SlackSettings, *,
                 oncall: OnCallSpec | None = None, max_attempts: int = 5,
                 base_delay: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.oncall = oncall
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.sleep = sleep
        self.clock = clock

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
        time range). Returns how many went out (0 when not due or empty)."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        last = self.store.digest_sent_at()
        if last is not None and (now - last).total_seconds() < every_seconds:
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
            try:
                self._call(self.client.chat_postMessage, channel=self.settings.channel,
                           text=text)
            except DeliveryError as exc:
                log.warning("digest not sent (will retry): %s", exc)
                return sent
            self.store.mark_digested([i.incident_id for i in chunk], now)
            sent += len(chunk)
        self.store.record_digest(now)
        return sent

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

    def deliver_pending(self) -> Report:
        """Deliver every unsent outbox message, oldest first."""
        report = Report()
        for message_id in self.store.pending_messages(GIVE_UP_ATTEMPTS):
            outcome = self._deliver_one(message_id, report)
            if outcome is True:
                report.sent += 1
            elif outcome is False:
                report.failed += 1
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

    def _deliver_one(self, message_id: str, report: Report) -> bool | None:
        """True when delivered, False when it failed, None when it must wait."""
        try:
            msg = self.store.message(message_id)
        except ValueError as exc:  # a row this version cannot read: left for a person
            self.store.record_attempt(message_id, datetime.fromtimestamp(self.clock(), tz=UTC),
                                      error=f"cannot deliver: {exc}")
            report.attempts += 1
            return False
        if not self._ready(msg):
            return None
        for attempt in range(self.max_attempts):
            report.attempts += 1
            try:
                try:
                    where = self._send(msg)
                except DeliveryError:
                    raise
                except Exception as exc:  # a bad row or payload must not stop the others
                    raise DeliveryError(f"cannot deliver: {type(exc).__name__}: {exc}",
                                        retryable=False) from exc
            except DeliveryError as exc:
                self.store.record_attempt(message_id,
                                          datetime.fromtimestamp(self.clock(), tz=UTC),
                                          error=str(exc))
                log.warning("outbox %s: attempt %d failed: %s", message_id, attempt + 1, exc)
                if not exc.retryable:
                    return False
                if attempt + 1 < self.max_attempts:
                    self.sleep(exc.wait or self.base_delay * 2 ** attempt)
                continue
            self.store.record_attempt(message_id, datetime.fromtimestamp(self.clock(), tz=UTC),
                                      error=None, posted=where)
            return True
        return False

    def _send(self, msg: OutboxMessage) -> tuple[str, str] | None:
        if msg.kind is MessageKind.PAGE:
            assert msg.page_id is not None
            page, lead = self.store.page_content(msg.page_id)
            text, blocks = page_message(page, lead, self.settings.console_url,
                                        mention=self.mention(page["escalation_level"]))
            resp = self._call(self.client.chat_postMessage,
                              channel=page["channel"] or self.settings.channel,
                              text=text, blocks=blocks)
            return str(resp["channel"]), str(resp["ts"])
        assert msg.incident_id is not None
        if msg.kind is MessageKind.THREAD:
            root = self.store.posted_pages(msg.incident_id)[0]
            lines = "\n".join(f"• {line}" for line in msg.payload["summaries"])
            self._call(self.client.chat_postMessage, channel=root.slack_channel,
                       thread_ts=root.slack_ts,
                       text=f":repeat: still firing ({msg.payload['alerts']} alert(s)):\n"
                            f"{lines}")
            return None
        for posted in self.store.posted_pages(msg.incident_id):  # the page, its escalations
            text, blocks = resolved_message(posted.summary)
            self._call(self.client.chat_update, channel=posted.slack_channel,
                       ts=posted.slack_ts, text=text, blocks=blocks)
        return None

    @staticmethod
    def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                wait = float(exc.response.headers.get("Retry-After", "1") or 1)
                raise DeliveryError("rate limited (429)", retryable=True, wait=wait) from None
            if status >= 500:
                raise DeliveryError(f"Slack error {status}", retryable=True) from None
            raise DeliveryError(f"Slack refused: {exc.response.get('error')}",
                                retryable=False) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise DeliveryError(f"no answer from Slack: {exc}", retryable=True) from None


def run_notifier(store: DeliveryStore, settings: SlackSettings, *, once: bool,
                 interval: float = 5.0, oncall: OnCallSpec | None = None,
                 digest_every: float = 24 * 3600) -> Report:
    """Deliver pending messages, escalations and the digest when due; once, or every
    ``interval`` seconds."""
    notifier = Notifier(store, slack_client(settings), settings, oncall=oncall)
    total = Report()
    while True:
        notifier.send_digest(digest_every)
        report = notifier.deliver_pending()
        if notifier.escalate():
            again = notifier.deliver_pending()
            report.sent += again.sent
            report.failed += again.failed
            report.attempts += again.attempts
        total.sent += report.sent
        total.failed += report.failed
        total.attempts += report.attempts
        if once:
            return total
        time.sleep(interval)
