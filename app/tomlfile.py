"""Reading the gateway's TOML files (keys, prices) with one kind of failure: the file's own error class, one line
naming the file and what is wrong, never a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read(path: Path, error: type[ValueError], what: str, missing: str = "") -> dict[str, Any]:
    """The document in `path`; `error` naming it as `what` when it is missing (with the `missing` hint) or
    unreadable."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist{missing}") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} cannot be read: {exc}") from None
