"""Write the expanded experiment files of a sweep as TOML (tomllib reads, but does not write)."""

from __future__ import annotations

import json
import math
from typing import Any


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v, where) for v in value) + "]"
    raise TypeError(f"{where}: cannot write a {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dumps(data: dict[str, Any], header: str = "") -> str:
    """TOML text of a mapping of scalars, lists of scalars and nested tables."""
    lines = [f"# {line}" for line in header.splitlines()]

    def table(node: dict[str, Any], prefix: str) -> None:
        subs = []
        for key, value in node.items():
            if isinstance(value, dict):
                subs.append((key, value))
            else:
                lines.append(f"{_key(key)} = {_scalar(value, prefix + key)}")
        for key, value in subs:
            name = f"{prefix}{_key(key)}"
            lines.append("")
            lines.append(f"[{name}]")
            table(value, name + ".")

    table(data, "")
    return "\n".join(lines) + "\n"
