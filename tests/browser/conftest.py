"""Browser tests: the console over real HTTP (``watchkeeper api``, the project's own entry
point) on a replayed scenario's database, driven in headless Chromium by Playwright.

The browser is Debian's ``chromium`` package (scripts/setup.sh installs it; Playwright's
own browser download is never used): ``executable_path`` points at it. Without it these
tests skip, unless ``WATCHKEEPER_REQUIRE_SERVICES=1`` (scripts/test.sh, so CI) or ``CI``
is set, where a missing browser fails. Screenshots go to ``artifacts/browser/`` (ignored by
git; ``WATCHKEEPER_ARTIFACTS`` moves it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from sim.scenarios import generate, write_scenario
from tests.ports import free_port
from watchkeeper.cli import main

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token-0123456789"


def chromium_path() -> str | None:
    return os.environ.get("WATCHKEEPER_CHROMIUM") or shutil.which("chromium")


@dataclass(frozen=True)
class Console:
    url: str
    db: Path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("WATCHKEEPER_ARTIFACTS") or ROOT / "artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        why = "no chromium (Debian's package; bash scripts/setup.sh installs it)"
        if os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1" or os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, headless=True,
                                     args=["--no-sandbox"])  # root in CI
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A broken-pipeline replay (5,000 predictions: one page) served by ``watchkeeper
    api`` on a free port."""
    tmp = tmp_path_factory.mktemp("console")
    files = write_scenario(generate("broken_pipeline", predictions=5_000, seed=7),
                           tmp / "broken_pipeline.jsonl")
    db = tmp / "wk.db"
    assert main(["replay", str(files.events), "--config", str(files.config), "--db", str(db),
                 "-q"]) == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env.update(WATCHKEEPER_API_TOKEN=TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "api", "--db", str(db),
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:  # not listening yet, or 503 (HTTPError is an OSError)
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"watchkeeper api did not start: {out}")
            time.sleep(0.1)
        yield Console(url, db)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
