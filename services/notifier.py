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
from sqlalchemy import select, update

from alerts.store.sql import SqlStore
from alerts.store.tables import AlertRow, OutboxRow, PageRow
from services.slack_blocks import page_message, resolved_message
from watchkeeper.settings import SlackSettings

log = logging.getLogger("watchkeeper.notifier")


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
    def __init__(self, store: SqlStore, client: WebClient, settings: SlackSettings, *,
                 max_attempts: int = 5, base_delay: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.sleep = sleep

    def deliver_pending(self) -> Report:
        """Deliver every unsent outbox message, oldest first."""
        report = Report()
        with self.store.engine.connect() as conn:
            ids = conn.execute(select(OutboxRow.message_id).where(OutboxRow.sent_at.is_(None))
                               .order_by(OutboxRow.created_at, OutboxRow.message_id)
                               ).scalars().all()
        for message_id in ids:
            if self._deliver_one(message_id, report):
                report.sent += 1
            else:
                report.failed += 1
        return report

    def _deliver_one(self, message_id: str, report: Report) -> bool:
        engine = self.store.engine
        with engine.connect() as conn:
            msg = conn.execute(select(OutboxRow).where(OutboxRow.message_id == message_id)
                               ).mappings().one()
        for attempt in range(self.max_attempts):
            report.attempts += 1
            try:
                where = self._send(dict(msg))
            except DeliveryError as exc:
                with engine.begin() as conn:
                    conn.execute(update(OutboxRow).where(OutboxRow.message_id == message_id)
                                 .values(attempts=OutboxRow.attempts + 1,
                                         last_error=str(exc)[:1000]))
                log.warning("outbox %s: attempt %d failed: %s", message_id, attempt + 1, exc)
                if not exc.retryable:
                    return False
                if attempt + 1 < self.max_attempts:
                    self.sleep(exc.wait or self.base_delay * 2 ** attempt)
                continue
            now = datetime.now(tz=UTC)
            with engine.begin() as conn:
                conn.execute(update(OutboxRow).where(OutboxRow.message_id == message_id)
                             .values(attempts=OutboxRow.attempts + 1, sent_at=now,
                                     last_error=None))
                if msg["kind"] == "page" and where is not None:
                    conn.execute(update(PageRow).where(PageRow.page_id == msg["page_id"])
                                 .values(delivered=True, delivered_at=now,
                                         slack_channel=where[0], slack_ts=where[1]))
            return True
        return False

    def _send(self, msg: dict[str, Any]) -> tuple[str, str] | None:
        with self.store.engine.connect() as conn:
            if msg["kind"] == "page":
                page = conn.execute(select(PageRow).where(PageRow.page_id == msg["page_id"])
                                    ).mappings().one()
                lead = conn.execute(select(AlertRow).where(AlertRow.alert_id == page["alert_id"])
                                    ).mappings().one()
                text, blocks = page_message(dict(page), dict(lead), self.settings.console_url)
                resp = self._call(self.client.chat_postMessage,
                                  channel=page["channel"] or self.settings.channel,
                                  text=text, blocks=blocks)
                return str(resp["channel"]), str(resp["ts"])
            if msg["kind"] == "resolve":
                posted = conn.execute(select(PageRow).where(
                    PageRow.incident_id == msg["incident_id"], PageRow.slack_ts.is_not(None))
                ).mappings().first()
                if posted is None:
                    return None  # never delivered: nothing to update
                text, blocks = resolved_message(posted["summary"])
                self._call(self.client.chat_update, channel=posted["slack_channel"],
                           ts=posted["slack_ts"], text=text, blocks=blocks)
                return None
        raise DeliveryError(f"unknown outbox kind {msg['kind']!r}", retryable=False)

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


def run_notifier(store: SqlStore, settings: SlackSettings, *, once: bool,
                 interval: float = 5.0) -> Report:
    """Deliver pending messages once, or keep delivering every ``interval`` seconds."""
    notifier = Notifier(store, slack_client(settings), settings)
    total = Report()
    while True:
        report = notifier.deliver_pending()
        total.sent += report.sent
        total.failed += report.failed
        total.attempts += report.attempts
        if once:
            return total
        time.sleep(interval)
