"""Every shell example of README.md and docs/*.md runs as written against one demo gateway (`acedata-proxy demo`,
the fake upstream behind it), so no example rots. The few that cannot run here are listed in SKIPPED, each with
its reason; a SKIPPED entry no example matches fails the test, so the list cannot outlive its examples.

Rewrites, the only differences from what a reader types: the demo's address for 127.0.0.1:8000, the checkout's
.venv for `.venv/bin/` and for `scripts/run ARGS` (which is `.venv/bin/acedata-proxy ARGS` once .venv is set up,
as the README says), and `curl --fail-with-body`, so that an HTTP error fails the example too."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ledger.store import SqliteStore
from tests.helpers import ROOT, CliProcess, wait_healthy
from tests.helpers.servers import clean_env

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.S | re.M)

# (a regular expression matching the start of the command, why it does not run here)
SKIPPED = [
    (r"scripts/run( +#.*)?$", "starts the gateway and serves until stopped: the demo this test runs stands for it"),
    (r"scripts/run demo\b", "the demo itself, which this test starts once for every example"),
    (r"PROXY_KEYS_FILE=keys.toml scripts/run$", "starts the gateway and serves until stopped"),
    (r"PROXY_KEYS_FILE=keys.toml PROXY_PRICES_FILE=\S+ scripts/run demo$", "the demo with keys and prices"),
    (r"scripts/test\b", "runs the test suite this test is part of"),
    (r"echo 'ACEDATACLOUD_API_TOKEN=\.\.\.'", "needs a real AceData token"),
    (r"(ANTHROPIC_BASE_URL=.* )?claude$", "needs Claude Code (an npm install) and a real model behind the gateway"),
    (r"docker (build|run)\b", "needs a Docker engine; deploy/verify-image.sh checks the image with podman instead"),
    (r"deploy/verify-image\.sh\b", "builds images for minutes as root; scripts/test --all runs it"),
    (r"\.venv/bin/python bench/run\.py\b", "the benchmark needs nginx and wrk and minutes; scripts/test --all runs it"),
    (r"curl .*/admin/usage", "needs a gateway with a keys file and an admin key: tests/routes/test_admin.py"),
]


def examples(document: Path) -> list[str]:
    """The document's shell commands, in order, each with its continuation lines."""
    commands = []
    for block in BLOCK.findall(document.read_text()):
        command = ""
        for line in block.splitlines():
            command += line + ("\n" if line.endswith("\\") else "")  # bash joins a backslash-newline
            if not line.endswith("\\") and command.strip():
                commands.append(command.strip())
                command = ""
    return commands


def skip_reason(command: str) -> str | None:
    return next((reason for pattern, reason in SKIPPED if re.match(pattern, command)), None)


def rewritten(command: str, address: str) -> str:
    venv = f"{ROOT}/.venv/bin/"
    command = command.replace("127.0.0.1:8000", address).replace(".venv/bin/", venv)
    command = re.sub(r"^scripts/run ", venv + "acedata-proxy ", command)
    return re.sub(r"^curl ", "curl --fail-with-body --silent --show-error --max-time 30 ", command)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("demo")
    cli = CliProcess(workdir, "demo", listen=True)
    try:
        wait_healthy(cli.url, cli.proc)
        yield cli.url.removeprefix("http://")
    finally:
        cli.stop()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_shell_example_runs(document: Path, demo: str, tmp_path: Path):
    (tmp_path / "data").mkdir()
    SqliteStore(tmp_path / "data" / "ledger.sqlite3").close()  # the ledger a gateway that served would have left
    env = clean_env(tmp_path)
    for command in examples(document):
        if skip_reason(command) is None:
            result = subprocess.run(["bash", "-c", rewritten(command, demo)], cwd=tmp_path, env=env, timeout=60,
                                    capture_output=True, text=True)  # fmt: skip
            assert result.returncode == 0, f"{document.name}: {command}\n{result.stdout}\n{result.stderr}"


def test_every_skip_is_still_needed():
    commands = [command for document in DOCUMENTS for command in examples(document)]
    for pattern, reason in SKIPPED:
        assert any(re.match(pattern, command) for command in commands), f"no example is skipped for: {reason}"
    assert sum(skip_reason(command) is None for command in commands) >= 15  # most examples do run


REFERENCE = ["configuration", "team-gateway", "metrics-and-logs", "deployment", "architecture", "performance"]


def test_every_relative_link_resolves_and_the_readme_links_the_reference():
    broken = set()
    for document in [ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *DOCUMENTS]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text()):
            path = (document.parent / target).resolve()
            if not path.exists():
                broken.add(str(path.relative_to(ROOT)))
    assert broken == set()
    readme = (ROOT / "README.md").read_text()
    assert [page for page in REFERENCE if f"](docs/{page}.md)" not in readme] == []
    assert len(readme.splitlines()) <= 250
