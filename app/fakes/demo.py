"""`acedata-proxy demo`: the gateway and the built-in fake upstream together on loopback, so every route can be
tried with no AceData token and no network; and `acedata-proxy fake-upstream` alone, for benchmarks."""

from __future__ import annotations

import asyncio
import socket

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
    loopback_socket,
)
from app.settings import Settings

DEMO_TOKEN = "demo-upstream-token"

DEMO_BANNER = """
acedata-proxy demo: the gateway on http://{host}:{port}, talking to a built-in fake upstream on
http://127.0.0.1:{fake_port} (no AceData token, no network). Try:

  curl -s http://{host}:{port}/aichat/conversations -H 'content-type: application/json' \\
       -d '{{"model": "gpt-4o", "question": "hi"}}'
  curl -sN http://{host}:{port}/aichat/conversations -H 'accept: application/x-ndjson' \\
       -H 'content-type: application/json' -d '{{"model": "gpt-4o", "question": "hi"}}'
  curl -sN http://{host}:{port}/openai/responses -H 'content-type: application/json' \\
       -d '{{"model": "gpt-4.1", "input": "hi", "stream": true}}'
  curl -sN http://{host}:{port}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{{"model": "claude-sonnet-4-20250514", "messages": [{{"role": "user", "content": "hi"}}], "stream": true}}'
  curl -s http://{host}:{port}/v1/models

  ANTHROPIC_BASE_URL=http://{host}:{port} ANTHROPIC_AUTH_TOKEN=demo CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \\
       claude -p "hello"     (Claude Code; docs/claude-code.md)

  python -c "from openai import OpenAI; c = OpenAI(base_url='http://{host}:{port}/v1', api_key='x'); \\
m = [{{'role': 'user', 'content': 'hi'}}]; \\
print(c.chat.completions.create(model='gpt-4o', messages=m).choices[0].message.content)"

Swagger UI, to try every route from a browser: http://{host}:{port}/docs

Ctrl-C stops both.
"""


async def _demo(settings: Settings, sock: socket.socket) -> None:
    fake_sock = loopback_socket()
    fake_port = fake_sock.getsockname()[1]
    fake = FakeUpstream(token=DEMO_TOKEN, behaviour=Behaviour(deltas=16, delay=0.12))
    fake.record = False
    settings = settings.model_copy(
        update={"api_token": SecretStr(DEMO_TOKEN), "api_base_url": f"http://127.0.0.1:{fake_port}"}
    )
    fake_config = uvicorn.Config(fake, **{**UVICORN_OPTIONS, "lifespan": "off"})
    gateway_config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, **gateway_options(settings)
    )
    print(DEMO_BANNER.format(host=settings.host, port=settings.port, fake_port=fake_port), flush=True)
    fake_server, gateway_server = uvicorn.Server(fake_config), uvicorn.Server(gateway_config)
    await asyncio.gather(fake_server.serve(sockets=[fake_sock]), gateway_server.serve(sockets=[sock]))


def demo(settings: Settings, sock: socket.socket | None = None) -> None:
    check_bind(settings)
    # claimed (PortInUse if another gateway, demo or program has it) and bound here, before the banner
    with claimed(settings.host, settings.port if sock is None else 0):
        sock = sock or loopback_socket(settings.port, settings.host)
        exit_quietly_on_signals()
        import uvloop

        uvloop.run(_demo(settings, sock))


def fake_upstream(host: str, port: int, token: str, deltas: int, delay: float) -> None:
    app = FakeUpstream(token=token, behaviour=Behaviour(deltas=deltas, delay=delay))
    app.record = False
    uvicorn.run(app, host=host, port=port, **{**UVICORN_OPTIONS, "lifespan": "off"})
