"""`acedata-proxy demo` as a newcomer meets it: its URL and start lines said once, its traffic kept out of the real
usage ledger, and, with a keys file, commands that carry a key."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.access import keys
from tests.helpers import CliProcess, wait_healthy


def test_demo_with_a_keys_file_logs_once_and_keeps_the_real_ledger_clean(tmp_path: Path):
    key = keys.create(tmp_path / "keys.toml", "alice")
    cli = CliProcess(tmp_path, "demo", listen=True, PROXY_KEYS_FILE="keys.toml")
    try:
        wait_healthy(cli.url, cli.proc)
        answer = httpx.post(
            cli.url + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"},
            headers={"authorization": f"Bearer {key}"}, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200
        assert (
            httpx.post(cli.url + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"}).status_code
            == 401
        )
    finally:
        output = cli.stop().decode()
    assert cli.proc.returncode == 0, output
    assert output.count(f"listening on {cli.url}\n") == 1, output
    for line in ("Started server process", "Application startup complete", "Finished server process"):
        assert output.count(line) == 1, (line, output)
    curls = [line for line in output.splitlines() if line.lstrip().startswith("curl ")]
    assert len(curls) == 5
    assert all('-H "authorization: Bearer $KEY"' in line for line in curls)
    assert "api_key=os.environ['KEY']" in output
    assert "export KEY=sk-... first" in output
    assert not (tmp_path / "data").exists()  # the real ledger (PROXY_DATA_DIR) was never opened


def test_demo_without_keys_prints_commands_without_a_key(tmp_path: Path):
    from app.fakes.demo import banner
    from app.settings import Settings

    text = banner(Settings(_env_file=None, PROXY_PORT="8123"), 9999)
    assert "curl -s http://127.0.0.1:8123/v1/models\n" in text
    assert "$KEY" not in text
    assert "api_key='x'" in text
