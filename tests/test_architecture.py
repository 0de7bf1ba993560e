"""docs/architecture.md's module table names every module of app/, so a newcomer can find where a request goes by
reading it beside the folders; the README's guarantees name the bounds the code enforces."""

from __future__ import annotations

import re

from app.proxy.bodies import MAX_CONTAINERS, MAX_FIELDS, MAX_SEPARATORS
from app.proxy.forward import EARLY_CHECK_FROM
from app.proxy.table import MAX_OUTPUT_TOKENS
from app.proxy.usage import BYTES_PER_TOKEN
from app.serving.limits import BODY_RATE, HEAD_BYTES, HEAD_FIELDS
from app.settings import Settings
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


def test_the_readmes_guarantees_are_the_codes_bounds():
    section = (ROOT / "README.md").read_text().partition("## What it guarantees")[2].partition("\n## ")[0]
    defaults = Settings(_env_file=None)
    bounds = [
        f"at most {HEAD_BYTES // 1024} KiB and {HEAD_FIELDS} fields",
        f"within {defaults.head_timeout:g} s (`PROXY_HEAD_TIMEOUT`)",
        f"plus 1 s per {BODY_RATE // 1024} KiB",
        f"at most {defaults.max_request_bytes // 2**20} MiB (`PROXY_MAX_REQUEST_BYTES`), {MAX_SEPARATORS:,} commas",
        f"{MAX_CONTAINERS:,} objects and arrays and {MAX_FIELDS} top-level fields",
        f"before a body of {EARLY_CHECK_FROM // 1024} KiB or more is read",
        f"input at {BYTES_PER_TOKEN} bytes a token, plus the output cap, at most {MAX_OUTPUT_TOKENS:,}",
        f"the text it relayed ({BYTES_PER_TOKEN} bytes a token)",
    ]
    assert [bound for bound in bounds if bound not in " ".join(section.split())] == []
