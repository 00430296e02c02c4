"""Schema management: Alembic migrations run programmatically (``watchkeeper db``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

import migrations


def database_url(db: str) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as is, anything else an SQLite file path.

    >>> database_url("alerts.db")
    'sqlite:///alerts.db'
    >>> database_url("postgresql://wk@127.0.0.1:5432/wk")
    'postgresql://wk@127.0.0.1:5432/wk'
    """
    return db if "://" in db else f"sqlite:///{db}"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
