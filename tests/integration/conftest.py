"""Integration fixtures: real services, started by scripts/test.sh (scripts/postgres.sh).

Without ``DATABASE_URL`` these tests skip, unless ``WATCHKEEPER_REQUIRE_SERVICES=1`` (set
by scripts/test.sh and CI), where a missing service is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from alerts.store.schema import database_url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def _required(name: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is not set, but services are required")
    pytest.skip(f"{name} not set: run scripts/test.sh, which starts the services")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _required("DATABASE_URL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _required("KAFKA_BOOTSTRAP")


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server; its libpq URL (as psql takes it)."""
    name = f"wk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(drivername="postgresql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
