"""Shared by the benchmark scripts: print a result as JSON and, when asked, write it to a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, json_path: str | None) -> None:
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if json_path:
        Path(json_path).write_text(text, encoding="utf-8")
