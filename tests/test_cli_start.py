"""Starting the gateway as a newcomer does: `scripts/run --port P` (serve's options without the word `serve`), the
URL said once, and settings that cannot work or are misspelled named in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import ROOT, START_TIMEOUT, CliProcess, listening_ports, listening_socket, run_cli, wait_for
from tests.helpers.servers import clean_env, wait_healthy


def test_scripts_run_takes_serves_options_and_logs_the_url_once(tmp_path: Path):
    """`scripts/run --port 0` is `acedata-proxy serve --port 0` (the kernel picks the port, read from /proc)."""
    proc = subprocess.Popen(
        [ROOT / "scripts" / "run", "--port", "0", "--workers", "1"], cwd=tmp_path, env=clean_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or listening_ports(proc.pid), START_TIMEOUT, "a listening port")
        [port] = listening_ports(proc.pid)
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=START_TIMEOUT)[0].decode()
    assert proc.returncode == 0, output
    assert output.count("listening on http://") == 1, output
    assert f"acedata_proxy.server: listening on http://127.0.0.1:{port}\n" in output
    assert output.count("Started server process") == 1


def test_a_misspelled_setting_is_named_at_start_with_the_closest_one(tmp_path: Path):
    """PROXY_KEY_FILE would otherwise start an open gateway without a word."""
    (tmp_path / ".env").write_text("PROXY_KEY_FILE=keys.toml\n")
    cli = CliProcess(tmp_path, "serve", listen=True, ACEDATACLOUD_API_TOKN="x")
    try:
        wait_healthy(cli.url, cli.proc)
    finally:
        output = cli.stop().decode()
    warnings = [line for line in output.splitlines() if "warning" in line]
    assert warnings == [
        "acedata-proxy: warning: ACEDATACLOUD_API_TOKN (in the environment) is not a setting: did you mean "
        "ACEDATACLOUD_API_TOKEN?",
        "acedata-proxy: warning: PROXY_KEY_FILE (in .env) is not a setting: did you mean PROXY_KEYS_FILE?",
    ]


def test_a_redis_url_without_scheme_stops_the_start_in_one_line(tmp_path: Path):
    with listening_socket() as taken:  # a start that got past the settings would fail differently here
        proc = run_cli(tmp_path, "serve", "--port", str(taken.getsockname()[1]), PROXY_REDIS_URL="localhost:6379")
        output, _ = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 1
    assert output.decode().splitlines() == [
        "acedata-proxy: PROXY_REDIS_URL: 'localhost:6379' is not a Redis URL: it starts with one of redis://, "
        "rediss://, unix:// (redis://localhost:6379)"
    ]
