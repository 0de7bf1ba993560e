"""The `acedata-proxy` command run in the test's own process: `app.cli.main` with the arguments, working directory
and environment a process would have, and what it printed and its exit status as `subprocess.run` returns them.

A process costs ~0.5 s of CPU for imports alone; the many cases of the keys and usage commands run here, and
tests/test_cli_ledger.py, tests/test_cli.py and the documentation's examples run the same commands as processes."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest

from app.cli import main
from tests.helpers.servers import SETTINGS_PREFIXES, clean_env


def _status(exited: SystemExit, stderr: io.StringIO) -> int:
    """What the interpreter makes of a SystemExit: a message goes to stderr and the status is 1."""
    if exited.code is None:
        return 0
    if isinstance(exited.code, int):
        return exited.code
    print(exited.code, file=stderr)
    return 1


def cli_in_process(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`acedata-proxy ARGS` in `cwd`, with the gateway settings (PROXY_*, ACEDATACLOUD_*) a process started by
    CliProcess would have: `env`, and the usage ledger in `cwd` unless `env` names another."""
    stdout, stderr = io.StringIO(), io.StringIO()
    status = 0
    settings = {name: value for name, value in clean_env(cwd, **env).items() if name.startswith(SETTINGS_PREFIXES)}
    with pytest.MonkeyPatch.context() as patch:
        for name in os.environ:
            if name.startswith(SETTINGS_PREFIXES):
                patch.delenv(name)
        for name, value in settings.items():
            patch.setenv(name, value)
        patch.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(list(args))
            except SystemExit as exited:
                status = _status(exited, stderr)
    return subprocess.CompletedProcess(["acedata-proxy", *args], status, stdout.getvalue(), stderr.getvalue())
