"""The `acedata-proxy` command: serve (default), demo, keys, fake-upstream."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from app import __version__, keys
from app.fake_upstream import Behaviour
from app.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acedata-proxy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"acedata-proxy {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the gateway (the default command)")
    _listen_options(serve)
    serve.add_argument("--workers", type=int, help="worker processes (PROXY_WORKERS, default 1)")
    serve.add_argument("--demo", action="store_true", help="same as `acedata-proxy demo`")
    demo = commands.add_parser("demo", help="gateway + built-in fake upstream on loopback; no token needed")
    _listen_options(demo)
    _keys_parser(commands.add_parser("keys", help="manage client keys (PROXY_KEYS_FILE)"))
    fake = commands.add_parser("fake-upstream", help="only the fake upstream (for benchmarks)")
    fake.add_argument("--host", default="127.0.0.1", help="listening address (default 127.0.0.1)")
    fake.add_argument("--port", type=int, default=9000, help="listening port (default 9000)")
    fake.add_argument(
        "--token", default="upstream-test-token", help="the bearer token it expects (ACEDATACLOUD_API_TOKEN)"
    )
    fake.add_argument("--deltas", type=int, default=5, help="stream pieces per answer")
    fake.add_argument("--delay", type=float, default=0.0, help="seconds between stream pieces")
    return parser


def _keys_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="add a key; prints the plaintext once, on the last line")
    create.add_argument("--name", required=True, help="the key's name, shown in logs, metrics and `keys list`")
    create.add_argument("--models", help="comma-separated allowlist (default: every model)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    actions.add_parser("list", help="list keys (names and limits; keys themselves are not stored)")
    revoke = actions.add_parser("revoke", help="remove a key")
    revoke.add_argument("name", help="the name of the key to remove")
    for action in actions.choices.values():
        action.add_argument("--file", type=Path, help="keys file (default: PROXY_KEYS_FILE, else ./keys.toml)")


def _keys(args: argparse.Namespace) -> None:
    path: Path = args.file or _settings(argparse.Namespace()).keys_file or Path("keys.toml")
    try:
        if args.action == "create":
            allowed = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            key = keys.create(path, args.name, allowed, args.rpm, args.tpm)
            print(f"Created key {args.name!r} in {path}. It is shown once and stored only as a SHA-256 digest:")
            print(key)
        elif args.action == "list":
            print(f"{'name':<24} {'models':<40} {'rpm':>8} {'tpm':>10}")
            for entry in keys.load(path):
                models = ",".join(sorted(entry.models)) if entry.models is not None else "*"
                print(f"{entry.name:<24} {models:<40} {entry.rpm or '-':>8} {entry.tpm or '-':>10}")
        else:
            keys.revoke(path, args.name)
            print(f"Revoked key {args.name!r} in {path}; running gateways drop it within a second.")
    except keys.KeysFileError as exc:
        sys.exit(f"acedata-proxy keys: {exc}")


def _listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listening address (PROXY_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listening port (PROXY_PORT, default 8000)")
    parser.add_argument(
        "--fd",
        type=int,
        help="serve on an inherited socket, already bound (file descriptor FD), instead of binding --host/--port; "
        "the address is read from the socket (for service managers and test harnesses that bind first)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name) for name in ("host", "port", "workers") if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)]
        sys.exit("acedata-proxy: invalid settings\n" + "\n".join(lines))


def _inherited_socket(args: argparse.Namespace) -> socket.socket | None:
    """The --fd socket, whose own address becomes the settings' host and port."""
    if args.fd is None:
        return None
    if args.host is not None or args.port is not None:
        sys.exit("acedata-proxy: give --fd or --host/--port, not both")
    try:
        sock = socket.socket(fileno=args.fd)  # family, type and protocol are read from the descriptor
    except OSError as exc:
        sys.exit(f"acedata-proxy: --fd {args.fd} is not a usable socket: {exc}")
    sock.set_inheritable(True)  # worker processes receive it too
    args.host, args.port = sock.getsockname()[:2]
    return sock


def _check_keys_file(settings: Settings) -> None:
    """A keys file that cannot be used stops the start in one line; inside the server it would be a traceback."""
    if settings.keys_file is None:
        return
    try:
        keys.load(settings.keys_file)
    except keys.KeysFileError as exc:
        hint = ""
        if settings.keys_file.exists() and not os.access(settings.keys_file, os.R_OK):
            # `keys create` writes mode 0600: mounted into a container, its user cannot read it
            hint = f" (this process runs as uid {os.getuid()}: make the file readable to it, e.g. chmod 0644)"
        sys.exit(f"acedata-proxy: PROXY_KEYS_FILE={settings.keys_file}: {exc}{hint}")


def main(argv: Sequence[str] | None = None) -> None:
    from app import demo, server  # uvicorn and the app load only for commands that serve

    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "keys":
        _keys(args)
        return
    if command == "fake-upstream":
        demo.fake_upstream(args.host, args.port, args.token, Behaviour(deltas=args.deltas, delay=args.delay))
        return
    if command == "serve" and args.command is None:
        args.host = args.port = args.workers = args.fd = None
    sock = _inherited_socket(args)
    settings = _settings(args)
    _check_keys_file(settings)
    try:
        if command == "demo" or getattr(args, "demo", False):
            demo.demo(settings, sock)
        else:
            server.serve(settings, sock)
    except (server.UnsafeBind, demo.PortInUse) as exc:
        sys.exit(f"acedata-proxy: {exc}")
