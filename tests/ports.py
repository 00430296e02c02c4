"""A free port on 127.0.0.1 for a test's own server, from the project's own
``scripts/free_port.py`` (the one scripts/test.sh uses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port(pair: bool = False) -> int:
    """A free port; with ``pair``, one whose next port is free too (Kafka's controller)."""
    args = [sys.executable, str(ROOT / "scripts" / "free_port.py")] + (["--pair"] if pair else [])
    return int(subprocess.run(args, check=True, capture_output=True, text=True,
                              timeout=30).stdout)
