"""Reading TOML files (bench, experiment and sweep files) with one clear error per failure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """The mapping of the UTF-8 TOML file ``path``.

    Args:
        path: the file.
        what: what the file is, for the messages ("bench file", "experiment file", ...).
        error: the exception class raised (with one line naming the file and the problem) when the
            file is missing, unreadable, not UTF-8 or not valid TOML.
    """
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if not path.is_file():
        raise error(f"{name} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{name} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{name} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise error(f"{name} cannot be read: {exc.strerror or exc}") from None
