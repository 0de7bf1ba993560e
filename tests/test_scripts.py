"""scripts/run installs only what serving needs; scripts/bootstrap (what scripts/test runs) adds the dev extras
and the npm package. Run against a stand-in Python that records what it is asked, so no package is installed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.helpers import ROOT

# answers `-m venv DIR` with a DIR/bin holding itself and an acedata-proxy that records its arguments
FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$LOG"
if [ "$1 $2" = "-m venv" ] && [ "$3" != "--help" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
    printf '#!/bin/sh\\necho "acedata-proxy $*" >> "$LOG"\\n' > "$3/bin/acedata-proxy"
    chmod +x "$3/bin/acedata-proxy"
fi
"""


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_run_installs_serving_only_and_test_setup_adds_the_dev_extras(tmp_path: Path):
    checkout, log = tmp_path / "checkout", tmp_path / "log"
    for name in ("scripts/run", "scripts/bootstrap", "pyproject.toml", "constraints.txt"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, checkout / name)
    executable(checkout / "tests/compat/js/install", '#!/bin/sh\necho npm >> "$LOG"\n')
    executable(tmp_path / "bin/python3", FAKE_PYTHON)
    executable(tmp_path / "bin/npm", "#!/bin/sh\n")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "LOG": str(log), "SYSTEM_PACKAGES": ""}

    def steps(*command: str) -> list[str]:
        log.write_text("")
        subprocess.run(command, cwd=checkout, env=env, check=True, timeout=30)
        return [
            line for line in log.read_text().splitlines() if not line.startswith(("python -c", "python -m venv --help"))
        ]

    run = steps("scripts/run", "--port", "9000")
    assert run[0] == "python -m venv .venv"
    assert run[1].startswith("python -m pip install ")
    assert run[1].endswith(" -e .")  # no [dev], and no npm
    assert run[2:] == ["acedata-proxy --port 9000"]
    dev = steps("scripts/bootstrap")
    assert dev[0].endswith(" -e .[dev]")
    assert dev[1:] == ["npm"]
    assert steps("scripts/run", "demo") == ["acedata-proxy demo"]  # the dev install serves too: nothing to do
