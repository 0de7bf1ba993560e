"""The gateway's image alone: keys-file refusals at start, health, readiness, a mounted keys file, one stream
through the OpenAI SDK, and SIGTERM with a stream in flight."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx

from app.access import keys
from deploy.verify.common import (
    DELAY,
    DELTAS,
    IMAGE,
    PREFIX,
    TOKEN,
    check,
    free_ports,
    podman,
    run,
    status,
    stream_through_sdk,
    wait_for,
)


def start_fake_upstream(port: int, name: str = "fake") -> None:
    run(
        name,
        "--entrypoint",
        "acedata-proxy",
        IMAGE,
        "fake-upstream",
        *("--port", str(port), "--token", TOKEN, "--deltas", str(DELTAS), "--delay", str(DELAY)),
    )
    if not wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code > 0):
        raise RuntimeError("the fake upstream did not start: " + podman("logs", f"{PREFIX}-{name}").stderr)


def refused_at_start(name: str, keys_file: Path | None, mount_as: str, needle: str) -> None:
    """The gateway refuses a bad keys file in one line, with no traceback, and exits non-zero."""
    mount = ["-v", f"{keys_file}:{mount_as}:ro"] if keys_file else []
    result = podman(
        "run",
        "--rm",
        "--no-healthcheck",
        "--name",
        f"{PREFIX}-{name}",
        *mount,
        "-e",
        f"PROXY_KEYS_FILE={mount_as}",
        IMAGE,
        timeout=60,
    )
    output = (result.stdout + result.stderr).strip()
    one_line = output.count("\n") == 0 and "Traceback" not in output
    check(
        result.returncode != 0 and one_line and needle in output,
        f"keys file {name}: refused in one line ({output[:110]}...)",
        f"exit {result.returncode}, output:\n{output}",
    )


def sigterm_with_stream_in_flight(name: str, url: str, key: str) -> None:
    chunks: list[bytes] = []
    got_first = threading.Event()

    def stream() -> None:
        body = {"model": "gpt-4.1", "input": "hi", "stream": True}
        headers = {"authorization": f"Bearer {key}"}
        with httpx.stream("POST", url + "/openai/responses", json=body, headers=headers, timeout=30) as response:
            for chunk in response.iter_raw():
                chunks.append(chunk)
                got_first.set()

    reader = threading.Thread(target=stream)
    reader.start()
    check(got_first.wait(10), "a stream is in flight")
    started = time.monotonic()
    stopped = podman("stop", "-t", "35", name, timeout=60)
    took = time.monotonic() - started
    reader.join(30)
    body = b"".join(chunks)
    exit_code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    logs = podman("logs", name)
    check(stopped.returncode == 0 and exit_code == "0", f"SIGTERM: exit code 0 after {took:.1f} s", exit_code)
    check(b"response.completed" in body, "SIGTERM: the stream in flight ran to its end", body[-200:].decode())
    check("Traceback" not in logs.stdout + logs.stderr, "SIGTERM: no traceback in the log")


def image_checks(work: Path) -> None:
    fake_port, gateway_port = free_ports(2)
    start_fake_upstream(fake_port)
    key_file = work / "keys.toml"
    key = keys.create(key_file, "verify")  # mode 0600, owned by this user: what `keys create` makes
    refused_at_start("missing", None, "/run/keys/none.toml", "does not exist")
    if os.getuid() != 10001:
        refused_at_start("unreadable", key_file, "/run/keys.toml", "Permission denied")
    broken = work / "broken.toml"
    broken.write_text("[[keys]\nname = 'x'\n")
    broken.chmod(0o644)
    refused_at_start("unparseable", broken, "/run/keys.toml", "Expected")
    key_file.chmod(0o644)
    environment = [f"ACEDATACLOUD_API_TOKEN={TOKEN}", f"ACEDATACLOUD_API_BASE_URL=http://127.0.0.1:{fake_port}"]
    env_args = [arg for value in [*environment, "PROXY_KEYS_FILE=/run/keys.toml"] for arg in ("-e", value)]
    name = run("gateway", *env_args, "-v", f"{key_file}:/run/keys.toml:ro", IMAGE, "serve", "--port", str(gateway_port))
    url = f"http://127.0.0.1:{gateway_port}"
    check(wait_for(lambda: status(url + "/healthz") == 200), f"/healthz 200 (serve --port {gateway_port})")
    check(status(url + "/readyz") == 200, "/readyz 200")
    health = podman("healthcheck", "run", name)
    check(health.returncode == 0, "the image's HEALTHCHECK follows --port: healthy", health.stdout + health.stderr)
    no_key = httpx.post(url + "/openai/responses", json={"model": "gpt-4.1", "input": "hi"}, timeout=10)
    check(no_key.status_code == 401, "mounted keys file in force: no key, 401")
    deltas, first, _ = stream_through_sdk(url + "/openai", key)
    check(deltas == DELTAS, f"OpenAI SDK: a streamed response, {deltas} deltas, first after {first:.2f} s")
    sigterm_with_stream_in_flight(name, url, key)
