"""docs/architecture.md's module table names every module of app/, so a newcomer can find where a request goes by
reading it beside the folders."""

from __future__ import annotations

import re

from tests.helpers import ROOT


def test_every_app_module_is_in_the_architecture_table():
    document = (ROOT / "docs" / "architecture.md").read_text()
    table = [line for line in document.splitlines() if line.startswith("| `app/") or line.startswith("| | `")]
    named: dict[str, set[str]] = {}
    folder = ""
    for line in table:
        cells = line.split("|")
        folder = cells[1].strip().strip("`") or folder
        named.setdefault(folder, set()).update(re.findall(r"`([\w.]+\.py)`", cells[2]))
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "app").rglob("*.py"))
        if path.name != "__init__.py" and path.name not in named.get(f"{path.parent.relative_to(ROOT)}/", set())
    ]
    assert missing == []
