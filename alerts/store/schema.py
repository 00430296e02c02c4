"""Schema management: Alembic migrations run programmatically (``watchkeeper db``)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.exc import SQLAlchemyError

from config.errors import RetryableError
from config.settings import redact as redact  # one redaction, also the settings' repr


def database_url(db: str) -> str:
    """A SQLAlchemy URL from ``--db``: an SQLite file path, or a URL. PostgreSQL URLs use
    psycopg2, the project's driver (SQLAlchemy 2.1 would pick psycopg 3 otherwise).

    >>> database_url("alerts.db")
    'sqlite:///alerts.db'
    >>> database_url("postgresql://wk@127.0.0.1:5432/wk")
    'postgresql+psycopg2://wk@127.0.0.1:5432/wk'
    >>> database_url("postgres://wk@db/wk")
    'postgresql+psycopg2://wk@db/wk'
    """
    if "://" not in db:
        return f"sqlite:///{db}"
    scheme, rest = db.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return db


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    # The migrations are data to the store: Alembic runs the scripts in that folder (a
    # package that sits above the store, its env.py reads the tables' metadata), so the
    # store locates them and does not import them.
    cfg.set_main_option("script_location", str(files("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision this version of Watchkeeper ships."""
    from alembic.script import ScriptDirectory

    rev = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert rev is not None
    return rev


def current(url: str) -> str | None:
    """The database's revision (None when it has none)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def migrate(url: str, direction: str, revision: str) -> None:
    """``watchkeeper db upgrade|downgrade``: RetryableError (one line) when the database
    cannot be reached or the migration fails."""
    try:
        if direction == "upgrade":
            upgrade(url, revision)
        elif direction == "downgrade":
            downgrade(url, revision)
        else:
            raise ValueError(f"not a direction: {direction!r}")
    except (SQLAlchemyError, OSError) as exc:
        raise RetryableError(str(exc).splitlines()[0]) from None
