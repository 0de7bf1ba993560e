"""`acedata-proxy demo`: the gateway and the built-in fake upstream together on loopback, so every route can be
tried with no AceData token and no network; and `acedata-proxy fake-upstream` alone, for benchmarks."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import tempfile
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from app.fakes.upstream import Behaviour, FakeUpstream
from app.main import create_app
from app.serving.address import claimed
from app.serving.server import (
    UVICORN_OPTIONS,
    check_bind,
    exit_quietly_on_signals,
    gateway_options,
    log_listening,
    loopback_socket,
)
from app.settings import Settings

DEMO_TOKEN = "demo-upstream-token"

DEMO_BANNER = """
acedata-proxy demo: the gateway on http://{host}:{port}, talking to a built-in fake upstream on
http://127.0.0.1:{fake_port} (no AceData token, no network; its usage is kept apart from the real ledger).
{keys}Try:

  curl -s http://{host}:{port}/aichat/conversations{auth} -H 'content-type: application/json' \\
       -d '{{"model": "gpt-4o", "question": "hi"}}'
  curl -sN http://{host}:{port}/aichat/conversations{auth} -H 'accept: application/x-ndjson' \\
       -H 'content-type: application/json' -d '{{"model": "gpt-4o", "question": "hi"}}'
  curl -sN http://{host}:{port}/openai/responses{auth} -H 'content-type: application/json' \\
       -d '{{"model": "gpt-4.1", "input": "hi", "stream": true}}'
  curl -sN http://{host}:{port}/v1/chat/completions{auth} -H 'content-type: application/json' \\
       -d '{{"model": "claude-sonnet-4-20250514", "messages": [{{"role": "user", "content": "hi"}}], "stream": true}}'
  curl -s http://{host}:{port}/v1/models{auth}

  ANTHROPIC_BASE_URL=http://{host}:{port} ANTHROPIC_AUTH_TOKEN={claude_key} \\
       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 claude -p "hello"     (Claude Code; docs/claude-code.md)

  python -c "import os; from openai import OpenAI; c = OpenAI(base_url='http://{host}:{port}/v1', \\
api_key={api_key}); m = [{{'role': 'user', 'content': 'hi'}}]; \\
print(c.chat.completions.create(model='gpt-4o', messages=m).choices[0].message.content)"

Swagger UI, to try every route from a browser: http://{host}:{port}/docs

Ctrl-C stops both.
"""
# with a keys file the gateway wants a key: the commands read it from $KEY (keys are stored only as digests)
KEYS_NOTE = """The gateway requires a client key from {keys_file}: export KEY=sk-... first (a new one:
.venv/bin/acedata-proxy keys create --name NAME --file {keys_file} prints it on its last line).
"""
# set in the fake upstream's task: uvicorn's start and finish lines are the gateway's alone, said once
_QUIET = contextvars.ContextVar("quiet", default=False)


def banner(settings: Settings, fake_port: int) -> str:
    keys_file = settings.keys_file
    return DEMO_BANNER.format(
        host=settings.host,
        port=settings.port,
        fake_port=fake_port,
        keys=KEYS_NOTE.format(keys_file=keys_file) if keys_file else "",
        auth=' -H "authorization: Bearer $KEY"' if keys_file else "",
        api_key="os.environ['KEY']" if keys_file else "'x'",
        claude_key="$KEY" if keys_file else "demo",
    )


async def _quietly(server: uvicorn.Server, sock: socket.socket) -> None:
    _QUIET.set(True)  # this task's context only
    await server.serve(sockets=[sock])


async def _demo(settings: Settings, sock: socket.socket, data_dir: Path) -> None:
    fake_sock = loopback_socket()
    fake_port = fake_sock.getsockname()[1]
    fake = FakeUpstream(token=DEMO_TOKEN, behaviour=Behaviour(deltas=16, delay=0.12))
    fake.record = False
    # the fake's traffic is not usage: a ledger of its own, gone when the demo stops
    update = {"api_token": SecretStr(DEMO_TOKEN), "api_base_url": f"http://127.0.0.1:{fake_port}"}
    settings = settings.model_copy(update={**update, "data_dir": data_dir, "redis_url": None})
    fake_config = uvicorn.Config(fake, **{**UVICORN_OPTIONS, "lifespan": "off"})
    gateway_config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, **gateway_options(settings)
    )
    print(banner(settings, fake_port), flush=True)
    log_listening(sock)
    fake_server, gateway_server = uvicorn.Server(fake_config), uvicorn.Server(gateway_config)
    await asyncio.gather(_quietly(fake_server, fake_sock), gateway_server.serve(sockets=[sock]))


def demo(settings: Settings, sock: socket.socket | None = None) -> None:
    check_bind(settings)
    # claimed (PortInUse if another gateway, demo or program has it) and bound here, before the banner
    with claimed(settings.host, settings.port if sock is None else 0):
        sock = sock or loopback_socket(settings.port, settings.host)
        exit_quietly_on_signals()
        logging.getLogger("uvicorn.error").addFilter(lambda record: not _QUIET.get())
        import uvloop

        with tempfile.TemporaryDirectory(prefix="acedata-proxy-demo-") as data_dir:
            uvloop.run(_demo(settings, sock, Path(data_dir)))


def serve_fake_upstream(host: str, port: int, token: str, deltas: int, delay: float) -> None:
    app = FakeUpstream(token=token, behaviour=Behaviour(deltas=deltas, delay=delay))
    app.record = False
    uvicorn.run(app, host=host, port=port, **{**UVICORN_OPTIONS, "lifespan": "off"})
