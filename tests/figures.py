"""Figures a test measured (events produced and counted, pages expected and sent, inputs
tried), written as JSON to ``artifacts/reliability/NAME.json`` (``WATCHKEEPER_ARTIFACTS``
moves ``artifacts/``) for docs/RELIABILITY.md; ignored by git."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def record(name: str, **figures: Any) -> Path:
    folder = Path(os.environ.get("WATCHKEEPER_ARTIFACTS") or ROOT / "artifacts") / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return path
