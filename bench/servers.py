"""The servers a benchmark runs: the nginx upstreams and reverse proxy, the gateway (the work tree's or a
snapshot's), the project's fake upstream, Redis and LiteLLM. Each is started in the workspace's registry, so it is
stopped on exit, and gets its listening socket handed over or binds port 0 (read back from /proc)."""

from __future__ import annotations

import os
import random
import resource
import shutil
import subprocess
from pathlib import Path

from bench.harness import HOST, REPO, BenchError, Pinning, Proc, Processes, gateway_python, log, wait_ready
from tests.helpers import RedisServer, listening_socket
from tests.helpers.servers import clean_env

UPSTREAM_TOKEN = "upstream-test-token"
RESPONSES_PATH, CHAT_PATH = "/openai/responses", "/openai/chat/completions"
MESSAGES_PATH, EMBEDDINGS_PATH = "/v1/messages", "/openai/embeddings"
STREAM_BODY = b'{"model":"gpt-4.1","input":"hi","stream":true}'
CHAT_BODY = b'{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}]}'
CHAT_STREAM_BODY = CHAT_BODY[:-1] + b',"stream":true,"stream_options":{"include_usage":true}}'
MESSAGES_BODY = b'{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
MESSAGES_STREAM_BODY = MESSAGES_BODY[:-1] + b',"stream":true}'
EMBEDDINGS_BODY = b'{"model":"text-embedding-3-small","input":"hi"}'
EMBEDDING_DIMENSIONS = 1536  # text-embedding-3-small's

# What the fixed-cost upstream answers: a small but complete Responses object, chat.completion and message.
RESPONSES_JSON = (
    '{"id":"resp_bench","object":"response","created_at":1700000000,"status":"completed","model":"gpt-4.1",'
    '"output":[{"id":"msg_bench","type":"message","status":"completed","role":"assistant","content":'
    '[{"type":"output_text","text":"Hello!","annotations":[]}]}],"usage":{"input_tokens":1,'
    '"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":'
    '{"reasoning_tokens":0},"total_tokens":3}}'
)
CHAT_JSON = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4.1","choices":'
    '[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'
)
MESSAGES_JSON = (
    '{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":'
    '[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,'
    '"usage":{"input_tokens":1,"output_tokens":2}}'
)


def embeddings_json() -> str:
    """One embedding of floats as OpenAI prints them (the API's default encoding); fixed values every run."""
    rng = random.Random(EMBEDDING_DIMENSIONS)
    vector = ",".join(f"{rng.gauss(0.0, 0.025):.10f}" for _ in range(EMBEDDING_DIMENSIONS))
    return (
        f'{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{vector}]}}],'
        '"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}'
    )


# ---------------------------------------------------------------------------------------------------- nginx

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LISTEN = "@LISTEN@"  # where a server block's listen directive goes


def start_nginx(procs: Processes, name: str, block: str, pinning: Pinning, connections: int = 8192) -> Proc:
    """nginx with one worker serving `block` (its `listen` at LISTEN), on a socket bound here and handed over: nginx
    takes listening sockets from its NGINX variable (what its binary upgrade uses) and cannot bind port 0."""
    home = procs.workdir / name
    home.mkdir()
    sock = listening_socket(HOST)
    sock.setblocking(False)  # nginx takes an inherited socket as its old binary left it: non-blocking
    port = sock.getsockname()[1]
    temp = "".join(
        f"    {kind}_temp_path {home / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = home / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {home / 'nginx.pid'};\nerror_log {home / 'error.log'} warn;\n"
        f"worker_rlimit_nofile {min(2 * connections, resource.getrlimit(resource.RLIMIT_NOFILE)[1])};\n"
        f"events {{ worker_connections {connections};{' multi_accept on;' if connections > 8192 else ''} }}\n"
        f"http {{\n    access_log off;\n{temp}    keepalive_requests 10000000;\n    keepalive_timeout 60s;\n"
        + block.replace(LISTEN, f"listen {HOST}:{port} backlog=16384")
        + "\n}\n"
    )
    argv = [NGINX, "-e", str(home / "error.log"), "-p", str(home), "-c", str(conf), "-g", "daemon off;"]
    env = {**os.environ, "NGINX": f"{sock.fileno()};"}
    proc = procs.start(name, pinning.server(argv), env, fds=(sock.fileno(),))
    sock.close()  # nginx holds it now
    proc.port = port
    wait_ready(proc, "/healthz", 15)
    return proc


def readable_by_nginx(*paths: Path) -> None:
    for path in paths:  # nginx's workers run as nobody when we are root
        path.chmod(path.stat().st_mode | 0o005)


def start_nginx_upstream(procs: Processes, pinning: Pinning, name: str = "nginx-upstream") -> Proc:
    """The fixed-cost upstream: a canned answer per route. The embeddings answer (~20 KB) is past what a `return`
    string may hold, so it is a file; a POST to a file is 405 in nginx, and `error_page 405 =200` serves it."""
    root = procs.workdir / f"{name}-files"
    root.mkdir()
    (root / "embeddings.json").write_text(embeddings_json())
    readable_by_nginx(procs.workdir, root, root / "embeddings.json")
    block = f"""    server {{
        {LISTEN};
        default_type application/json;
        location ~ /chat/completions$ {{ return 200 '{CHAT_JSON}'; }}
        location = /v1/messages {{ return 200 '{MESSAGES_JSON}'; }}
        location ~ /embeddings$ {{ error_page 405 =200 /embeddings.json; return 405; }}
        location = /embeddings.json {{ internal; root {root}; etag off; }}
        location / {{ return 200 '{RESPONSES_JSON}'; }}
    }}"""
    return start_nginx(procs, name, block, pinning)


def start_nginx_proxy(procs: Processes, upstream_port: int, pinning: Pinning, buffering: bool = True) -> Proc:
    """A near-limit reverse proxy: proxy_pass with a keep-alive upstream pool (for streams: proxy_buffering off)."""
    block = f"""    upstream bench_upstream {{
        server {HOST}:{upstream_port}; keepalive 1024; keepalive_requests 10000000;
    }}
    server {{
        {LISTEN};
        location / {{
            proxy_pass http://bench_upstream; proxy_http_version 1.1; proxy_set_header Connection "";
            {"" if buffering else "proxy_buffering off;"}
        }}
    }}"""
    return start_nginx(procs, "nginx-proxy", block, pinning, 8192 if buffering else 32768)


# -------------------------------------------------------------------------------------------------- gateway


def source_has(src: Path, text: str) -> bool:
    """Whether the gateway code in `src` (the work tree or a snapshot) has `text` in its app package: a --rev
    from before a route or option gets no row that needs it."""
    return any(text in path.read_text(errors="replace") for path in (src / "app").rglob("*.py"))


def start_gateway(
    procs: Processes,
    name: str,
    upstream_port: int,
    workers: int,
    pinning: Pinning,
    src: Path = REPO,
    launcher: list[str] | None = None,
    settings: dict[str, str] | None = None,
) -> Proc:
    """`serve --workers N` in front of the upstream with these `settings`, its data dir data-<name> in the temp
    dir. `src` holds the app package that runs; `launcher` replaces `python -m app` (bench/no_ledger.py). A socket
    is handed over with --fd; code from before --fd binds port 0."""
    env = clean_env(
        procs.workdir,
        PYTHONPATH=str(src),
        ACEDATACLOUD_API_TOKEN=UPSTREAM_TOKEN,
        PROXY_DATA_DIR=str(procs.workdir / f"data-{name}"),
        ACEDATACLOUD_API_BASE_URL=f"http://{HOST}:{upstream_port}",
        **(settings or {}),
    )
    argv = [*(launcher or [gateway_python(), "-m", "app"]), "serve", "--workers", str(workers)]
    if not source_has(src, '"--fd"'):
        proc = procs.start(name, pinning.server([*argv, "--host", HOST, "--port", "0"]), env)
        proc.wait_port()
    else:
        sock = listening_socket(HOST)
        proc = procs.start(name, pinning.server([*argv, "--fd", str(sock.fileno())]), env, fds=(sock.fileno(),))
        proc.port = sock.getsockname()[1]
        sock.close()  # the gateway holds it now
    wait_ready(proc, "/healthz", 40)
    return proc


def start_fake_upstream(procs: Processes, name: str, deltas: int, delay: float, pinning: Pinning) -> Proc:
    """The project's fake upstream (`acedata-proxy fake-upstream`): streams of `deltas` pieces `delay` apart."""
    argv = [gateway_python(), "-m", "app", "fake-upstream", "--host", HOST, "--port", "0", "--token", UPSTREAM_TOKEN]
    proc = procs.start(
        name, pinning.server([*argv, "--deltas", str(deltas), "--delay", str(delay)]), clean_env(procs.workdir)
    )
    proc.wait_port()
    wait_ready(proc, "/openai/models", 30, headers={"Authorization": f"Bearer {UPSTREAM_TOKEN}"})
    return proc


def start_redis(procs: Processes, pinning: Pinning) -> RedisServer | None:
    """A throwaway redis-server (tests.helpers') on the servers' core; None when it is not installed."""
    if shutil.which("redis-server") is None:
        log("Redis ledger row skipped: redis-server (Debian redis-server) is not installed")
        return None
    redis = RedisServer(procs.workdir)
    procs.cleanups.append(redis.release)
    try:
        redis.start()
    except AssertionError as exc:
        raise BenchError(f"redis-server did not start: {exc}") from None
    if pinning.server_cpu is not None and redis.proc is not None:
        for task in Path(f"/proc/{redis.proc.pid}/task").iterdir():  # every thread: it runs a few
            subprocess.run(
                ["taskset", "-p", "-c", str(pinning.server_cpu), task.name], capture_output=True, check=False
            )
    return redis


LITELLM_KEY = "sk-bench-master-key"


def start_litellm(procs: Processes, binary: str, upstream_port: int, pinning: Pinning) -> Proc:
    """LiteLLM's proxy with gpt-4.1 at the upstream, started offline (no cost map fetched, no telemetry)."""
    conf = procs.workdir / "litellm.yaml"
    conf.write_text(
        f"model_list:\n  - model_name: gpt-4.1\n    litellm_params:\n      model: openai/gpt-4.1\n"
        f"      api_base: http://{HOST}:{upstream_port}/v1\n      api_key: {UPSTREAM_TOKEN}\n"
        f"general_settings:\n  master_key: {LITELLM_KEY}\nlitellm_settings:\n  telemetry: false\n"
    )
    env = clean_env(
        procs.workdir,
        LITELLM_MASTER_KEY=LITELLM_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        NO_PROXY="*",
        no_proxy="*",
    )
    argv = [binary, "--config", str(conf), "--host", HOST, "--port", "0", "--num_workers", "1"]
    proc = procs.start("litellm", pinning.server(argv), env)
    proc.wait_port(180)
    wait_ready(proc, "/health/liveliness", 180)
    return proc


def litellm_version(binary: str) -> str | None:
    python = Path(binary).parent / "python"
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip() or None
