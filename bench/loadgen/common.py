"""Helpers shared by load generators (each runs as its own process and prints one JSON line)."""

from __future__ import annotations

import json
import sys
from typing import Any


def args() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    return parsed


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)
