"""Process settings, from the environment (``WATCHKEEPER_*``).

Built once in ``main()`` (:func:`load_settings`) and passed in; nothing reads the
environment at import time. Every command takes its database from
``WATCHKEEPER_DATABASE_URL`` (or ``--db``); a server command with none configured refuses
to start rather than create a database of its own.

>>> s = WorkerSettings(config="c.yaml", kafka_bootstrap="127.0.0.1:59092")
>>> s.broker_url
'kafka://127.0.0.1:59092'
>>> database_dsn("postgresql://wk@127.0.0.1:55432/wk"), database_dsn("history.db")
('postgresql://wk@127.0.0.1:55432/wk', 'sqlite:///history.db')
>>> database_dsn("mysql://x")
Traceback (most recent call last):
...
ValueError: a database URL is postgresql://… or sqlite:///…, or an SQLite file path; not 'mysql://x'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SCHEMES = ("postgresql://", "postgresql+psycopg2://", "sqlite:///", "sqlite://")


def database_dsn(url: str) -> str:
    """A database URL, checked: PostgreSQL or SQLite; a bare path is an SQLite file."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if not url.startswith(SCHEMES):
        raise ValueError("a database URL is postgresql://… or sqlite:///…, or an SQLite "
                         f"file path; not {url!r}")
    return url


DatabaseUrl = Annotated[str, AfterValidator(database_dsn)]


class WorkerSettings(BaseSettings):
    """``watchkeeper worker``: the live stream processor."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_", extra="ignore")

    config: Path | None = Field(default=None,
                                description="the YAML configuration (CONTRACT §2)")
    kafka_bootstrap: str = Field(default="127.0.0.1:9092",
                                 description="Kafka bootstrap servers, host:port[,host:port]")
    database_url: DatabaseUrl | None = Field(
        default=None, description="alert history database (PostgreSQL in production)")
    app_id: str = Field(default="watchkeeper", description="consumer group and state prefix")
    topic_prefix: str = Field(default="watchkeeper",
                              description="topics are PREFIX.predictions, .outcomes, .metrics, "
                                          ".signals, .deadletter, .control")
    partitions: int = Field(default=8, ge=1, description="partitions of every topic it creates")
    batch_max: int = Field(default=2000, ge=1, description="messages per processing batch")
    batch_within: float = Field(default=0.2, gt=0, description="seconds to wait for a batch")
    checkpoint_interval: float = Field(
        default=5.0, ge=0, description="seconds between checkpoints of a partition's monitor "
                                       "state (0: every batch). A killed worker's successor "
                                       "processes again at most this much, idempotently. "
                                       "The faust engine checkpoints every batch")
    session_timeout: float = Field(default=30.0, ge=6.0,
                                   description="seconds before a silent (killed) worker's "
                                               "partitions go to the others")
    web_port: int = Field(default=6066, ge=0,
                          description="/healthz, /readyz and /metrics (direct engine); Faust's "
                                      "web server (faust engine). 0: disabled")
    web_host: str = Field(default="127.0.0.1", description="the address web_port binds")
    log_level: str = Field(default="WARNING")
    engine: Literal["faust", "direct"] = Field(
        default="direct", description="direct: an aiokafka consumer group with no "
                                      "per-message framework cost (about 3x the throughput "
                                      "on single-event messages); faust: a Faust agent")

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{hp.strip()}" for hp in self.kafka_bootstrap.split(","))


class SlackSettings(BaseSettings):
    """Slack for the notifier and the API (``WATCHKEEPER_SLACK_*``). Without a bot token,
    pages are recorded as dry runs and nothing is sent."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_SLACK_", extra="ignore")

    bot_token: str | None = Field(default=None, description="xoxb-… bot token")
    signing_secret: str | None = Field(default=None,
                                       description="verifies interactivity requests")
    channel: str = Field(default="#ml-oncall", description="where pages go")
    api_url: str = Field(default="https://slack.com/api/",
                         description="Slack Web API base URL (a local fake in tests)")
    console_url: str = Field(default="http://127.0.0.1:8080",
                             description="base URL of the alert console, for links")
    api_token: str | None = Field(default=None, validation_alias="WATCHKEEPER_API_TOKEN",
                                  description="bearer token of the HTTP actions API")

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token)


class CommonSettings(BaseSettings):
    """What every command shares: ``WATCHKEEPER_DATABASE_URL`` (the alert history) and
    ``WATCHKEEPER_CONFIG`` (the YAML configuration)."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_", extra="ignore")

    database_url: DatabaseUrl | None = Field(default=None,
                                             description="postgresql://… or sqlite:///…")
    config: Path | None = Field(default=None, description="the YAML configuration")


@dataclass(frozen=True)
class Settings:
    """The one settings object of a process, built in ``main()`` and passed to the
    command: what every command shares, Slack's (and the API token), and the worker's
    (Kafka, the engine, batching, checkpoints)."""

    common: CommonSettings
    slack: SlackSettings
    worker: WorkerSettings

    def database_url(self, flag: str | None) -> str | None:
        """The database a command uses: ``--db``, else ``WATCHKEEPER_DATABASE_URL``."""
        return database_dsn(flag) if flag else self.common.database_url


def load_settings() -> Settings:
    """Read the environment once (pydantic's ValidationError on a malformed value)."""
    return Settings(CommonSettings(), SlackSettings(), WorkerSettings())
