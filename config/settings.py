"""Process settings, from the environment (``WATCHKEEPER_*``).

Built once in ``main()`` (:func:`load_settings`) and passed in; nothing reads the
environment at import time. Every command takes its database from
``WATCHKEEPER_DATABASE_URL`` (or ``--db``); a server command with none configured refuses
to start rather than create a database of its own.

Secrets (the Slack bot token and signing secret, the API token, the console's session
secret) are ``SecretStr``: the ``repr`` and ``str`` of the settings show ``**********``,
and a database URL's password shows as ``***``. Outside development
(``WATCHKEEPER_ENV``, ``production`` unless set) a server command refuses a secret that
is a placeholder or too short
(:meth:`Settings.weak_secret`).

>>> s = WorkerSettings(config="c.yaml", kafka_bootstrap="127.0.0.1:59092")
>>> s.broker_url
'kafka://127.0.0.1:59092'
>>> database_dsn("postgresql://wk@127.0.0.1:55432/wk"), database_dsn("history.db")
('postgresql://wk@127.0.0.1:55432/wk', 'sqlite:///history.db')
>>> database_dsn("mysql://root:hunter2@db/x")
Traceback (most recent call last):
...
ValueError: a database URL is postgresql://… or sqlite:///…, or an SQLite file path; not 'mysql://root:***@db/x'
>>> s = SlackSettings(bot_token="xoxb-1-2-abc")
>>> "xoxb-1-2-abc" in repr(s) + str(s), s.reveal("bot_token")
(False, 'xoxb-1-2-abc')
>>> repr(CommonSettings(database_url="postgresql://wk:hunter2@db/wk")).split(",")[0]
"CommonSettings(database_url='postgresql://wk:***@db/wk'"
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SCHEMES = ("postgresql://", "postgresql+psycopg2://", "sqlite:///", "sqlite://")
# userinfo to the last "@" (a password with a raw "@" is hidden whole), and libpq's
# password= parameter
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@?#]*):.*@", re.IGNORECASE | re.DOTALL)
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
# what SQLAlchemy takes for the host: after the userinfo (up to the first "@")
_HOST = re.compile(r"^[^:]+://(?:[^:/]*(?::[^@]*)?@)?(?P<host>[^/?#]*)", re.DOTALL)


def redact(url: str) -> str:
    """A database URL without its password (for messages and logs).

    >>> redact("postgresql://wk:secret@127.0.0.1/wk")
    'postgresql://wk:***@127.0.0.1/wk'
    >>> redact("postgresql://wk@db/wk?sslmode=require&password=secret")
    'postgresql://wk@db/wk?sslmode=require&password=***'
    >>> redact("sqlite:///alerts.db")
    'sqlite:///alerts.db'
    """
    return _PASSWORD_PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", url))


def database_dsn(url: str) -> str:
    """A database URL, checked: PostgreSQL or SQLite; a bare path is an SQLite file. The
    URL is never repeated with its password in an error."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if not url.startswith(SCHEMES):
        raise ValueError("a database URL is postgresql://… or sqlite:///…, or an SQLite "
                         f"file path; not {redact(url)!r}")
    if url.startswith("postgresql"):
        found = _HOST.match(url)
        try:
            bad = found is None or "@" in found.group("host") or (urlsplit(url).port or 0) < 0
        except ValueError:  # not a number after the host's ":"
            bad = True
        if bad:  # a driver would print the rest of the password as a host name
            raise ValueError("a database URL's port is a number, and '@', ':' or '/' in its "
                             f"password are percent-encoded (%40, %3A, %2F); not {redact(url)!r}")
    return url


DatabaseUrl = Annotated[str, AfterValidator(database_dsn)]

# Values that are not secrets but stand in for one (examples, defaults, tests' values),
# compared case-insensitively, after a Slack prefix (xoxb-, xoxp-, xapp-…) is taken off
PLACEHOLDERS = frozenset({
    "changeme", "change-me", "change_me", "changethis", "secret", "password", "passwd",
    "test", "testing", "token", "example", "placeholder", "dummy", "default", "admin",
    "root", "postgres", "watchkeeper", "todo", "none", "null", "…", "...", "<token>",
})
PLACEHOLDER_STARTS = ("your", "change", "replace", "example", "placeholder", "dummy",
                      "insert", "fake", "test", "secret", "password", "todo", "<")
MIN_SECRET_LENGTH = 16
SecretName = Literal["bot_token", "signing_secret", "api_token", "session_secret"]
SECRET_VARIABLES: dict[SecretName, str] = {
    "bot_token": "WATCHKEEPER_SLACK_BOT_TOKEN",
    "signing_secret": "WATCHKEEPER_SLACK_SIGNING_SECRET",
    "api_token": "WATCHKEEPER_API_TOKEN",
    "session_secret": "WATCHKEEPER_CONSOLE_SESSION_SECRET",
}


def placeholder(value: str) -> bool:
    """Whether ``value`` stands in for a secret rather than being one.

    >>> [placeholder(v) for v in ("xoxb-your-token", "changeme", "xoxb-xxxx-xxxx-xxxxxxxx",
    ...                           "Test", "8f742231b10e8888abcd99yyyzzz85a5")]
    [True, True, True, True, False]
    """
    core = re.sub(r"^(xox[a-z]|xapp)-", "", value.strip().lower())
    return (core in PLACEHOLDERS or core.startswith(PLACEHOLDER_STARTS) or "…" in core
            or "..." in core or len(set(core) - set("-_. ")) < 4)  # "xxxx-xxxx", "0000"


def weakness(value: str) -> str | None:
    """Why ``value`` cannot be a real secret (it is never part of the answer), or None.

    >>> weakness("xoxb-test"), weakness("s3cret-token"), weakness("8f742231b10e8888abcd99yyy")
    ('is a placeholder', 'is shorter than 16 characters', None)
    """
    if placeholder(value):
        return "is a placeholder"
    if len(value.strip()) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    return None


class _RedactedUrl(BaseSettings):
    """Settings whose ``repr`` shows ``database_url`` without its password."""

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact(value) if name == "database_url" and value else value


class WorkerSettings(_RedactedUrl):
    """``watchkeeper worker``: the live stream processor."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_", extra="ignore",
                                      hide_input_in_errors=True)  # no secret in errors

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

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_SLACK_", extra="ignore",
                                      hide_input_in_errors=True)  # no secret in errors

    bot_token: SecretStr | None = Field(default=None, description="xoxb-… bot token")
    signing_secret: SecretStr | None = Field(default=None,
                                             description="verifies interactivity requests")
    channel: str = Field(default="#ml-oncall", description="where pages go")
    api_url: str = Field(default="https://slack.com/api/",
                         description="Slack Web API base URL (a local fake in tests)")
    console_url: str = Field(default="http://127.0.0.1:8080",
                             description="base URL of the alert console, for links")
    api_token: SecretStr | None = Field(default=None, validation_alias="WATCHKEEPER_API_TOKEN",
                                        description="bearer token of the HTTP actions API")

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token)  # an empty SecretStr is false, as an unset one

    def reveal(self, name: SecretName) -> str | None:
        """The secret's value, for the call that uses it (never for a message or a log);
        None when it is unset or empty."""
        secret: SecretStr | None = getattr(self, name)
        return secret.get_secret_value() if secret else None


class ConsoleSettings(BaseSettings):
    """The web console's sign-in (``WATCHKEEPER_CONSOLE_*``), for ``watchkeeper api``.

    >>> ConsoleSettings(session_secret="4c0f9e2a7d1b8e3f5a6c")
    ConsoleSettings(user_header=None, session_secret=SecretStr('**********'), \
session_hours=12.0, secure_cookies=False, sign_in_failures=10, sign_in_window=300.0)
    """

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_CONSOLE_", extra="ignore",
                                      hide_input_in_errors=True)  # no secret in errors

    user_header: str | None = Field(
        default=None, description="a header a trusted reverse proxy sets to the signed-in "
                                  "person's name (X-Forwarded-User, say). Set it only when "
                                  "the api is reachable through that proxy alone")
    session_secret: SecretStr | None = Field(
        default=None, description="signs session cookies (default: derived from "
                                  "WATCHKEEPER_API_TOKEN, so changing the token signs "
                                  "everyone out; without either, a secret per process)")
    session_hours: float = Field(default=12.0, gt=0, description="a sign-in lasts this long")
    secure_cookies: bool = Field(default=False,
                                 description="send the session cookie over HTTPS only (set "
                                             "it when the console is served over HTTPS)")
    sign_in_failures: int = Field(default=10, ge=1,
                                  description="failed sign-ins a client (remote address) may "
                                              "make in sign_in_window seconds; then 429")
    sign_in_window: float = Field(default=300.0, gt=0,
                                  description="seconds over which failed sign-ins count")


class CommonSettings(_RedactedUrl):
    """What every command shares: ``WATCHKEEPER_DATABASE_URL`` (the alert history),
    ``WATCHKEEPER_CONFIG`` (the YAML configuration) and ``WATCHKEEPER_ENV``."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_", extra="ignore",
                                      hide_input_in_errors=True)  # no secret in errors

    database_url: DatabaseUrl | None = Field(default=None,
                                             description="postgresql://… or sqlite:///…")
    config: Path | None = Field(default=None, description="the YAML configuration")
    env: Literal["development", "production"] = Field(
        default="production", description="development: server commands accept placeholder "
                                          "and short secrets (tests, a laptop)")


@dataclass(frozen=True)
class Settings:
    """The one settings object of a process, built in ``main()`` and passed to the
    command: what every command shares, Slack's (and the API token), the worker's
    (Kafka, the engine, batching, checkpoints) and the console's."""

    common: CommonSettings
    slack: SlackSettings
    worker: WorkerSettings
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    def reveal(self, name: SecretName) -> str | None:
        """A secret's value (Slack's, the API token, the console's session secret), for
        the call that uses it; None when it is unset or empty."""
        if name == "session_secret":
            secret = self.console.session_secret
            return secret.get_secret_value() if secret else None
        return self.slack.reveal(name)

    def database_url(self, flag: str | None) -> str | None:
        """The database a command uses: ``--db``, else ``WATCHKEEPER_DATABASE_URL``."""
        return database_dsn(flag) if flag else self.common.database_url

    def weak_secret(self, names: Iterable[SecretName], database_url: str | None,
                    database_from: str = "WATCHKEEPER_DATABASE_URL") -> str | None:
        """Why a server command must not start, in one line naming the variable, or None:
        outside development, a secret it reads (``names``; set and not empty: an empty one
        counts as unset) that is a placeholder or shorter than 16 characters, or a database
        password that is a placeholder or the user's name. The value is never in it.

        >>> s = Settings(CommonSettings(env="production"),
        ...              SlackSettings(bot_token="xoxb-your-token"), WorkerSettings())
        >>> s.weak_secret(["bot_token"], "postgresql://wk@db/wk")
        'WATCHKEEPER_SLACK_BOT_TOKEN is a placeholder (WATCHKEEPER_ENV=development accepts it)'
        >>> s.weak_secret([], "postgresql://wk:wk@db/wk", "--db")
        'the password in --db is a placeholder (WATCHKEEPER_ENV=development accepts it)'
        """
        if self.common.env == "development":
            return None
        fix = " (WATCHKEEPER_ENV=development accepts it)"
        for name in names:
            value = self.reveal(name)
            why = weakness(value) if value is not None else None
            if why:
                return f"{SECRET_VARIABLES[name]} {why}{fix}"
        if database_url and "://" in database_url:
            parts = urlsplit(database_url)
            password = unquote(parts.password or "")
            if password and (placeholder(password)
                             or password == unquote(parts.username or "")):
                return f"the password in {database_from} is a placeholder{fix}"
        return None


def load_settings() -> Settings:
    """Read the environment once (pydantic's ValidationError on a malformed value)."""
    return Settings(CommonSettings(), SlackSettings(), WorkerSettings(), ConsoleSettings())


def variable(model: str, field_name: str) -> str:
    """The environment variable of a field of one of the settings classes (``model``, as
    pydantic's ValidationError titles it), for a one-line message.

    >>> variable("ConsoleSettings", "session_hours"), variable("SlackSettings", "channel")
    ('WATCHKEEPER_CONSOLE_SESSION_HOURS', 'WATCHKEEPER_SLACK_CHANNEL')
    >>> variable("SlackSettings", "WATCHKEEPER_API_TOKEN")  # an alias is the variable
    'WATCHKEEPER_API_TOKEN'
    """
    if field_name.upper().startswith("WATCHKEEPER_"):
        return field_name.upper()
    classes = {c.__name__: c for c in (CommonSettings, SlackSettings, WorkerSettings,
                                       ConsoleSettings)}
    prefix = classes[model].model_config.get("env_prefix", "") if model in classes else ""
    return f"{prefix or 'WATCHKEEPER_'}{field_name}".upper()
