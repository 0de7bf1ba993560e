"""The `acedata-proxy` command: serve (default: its options work without the word), demo, keys, usage,
fake-upstream."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from app import __version__, money
from app.access import keys
from app.access.budgets import period_of
from app.ledger import STORE_ERRORS, Store, open_store
from app.ledger.report import FORMATS, GROUPS, ReportError, build, render, since_hour
from app.ledger.store import sqlite_path
from app.settings import Settings, unknown_variables, variable_names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acedata-proxy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"acedata-proxy {__version__}")
    _serve_options(parser, None)  # `acedata-proxy --port 9000` is `acedata-proxy serve --port 9000`
    commands = parser.add_subparsers(dest="command")
    # SUPPRESS: an option the subcommand was not given keeps the value given before the subcommand's name
    _serve_options(commands.add_parser("serve", help="start the gateway (the default command)"), argparse.SUPPRESS)
    demo = commands.add_parser("demo", help="gateway + built-in fake upstream on loopback; no token needed")
    _listen_options(demo, argparse.SUPPRESS)
    _keys_parser(commands.add_parser("keys", help="manage client keys (PROXY_KEYS_FILE)"))
    usage = commands.add_parser("usage", help="report the usage ledger (PROXY_DATA_DIR, or PROXY_REDIS_URL)")
    usage.add_argument("--key", help="only this key's usage")
    usage.add_argument("--since", help="from this UTC date (YYYY-MM-DD) or ISO 8601 time; default: everything")
    usage.add_argument(
        "--by",
        choices=GROUPS,
        default="day",
        help="one line per day (default), model, key or route (with its billing unit)",
    )
    usage.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or json")
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
    create.add_argument("--budget-tokens", type=int, help="tokens the key may spend per budget period")
    create.add_argument("--budget-amount", type=float, help="money the key may spend per period (PROXY_PRICES_FILE)")
    create.add_argument("--budget-period", choices=keys.PERIODS, help="UTC day or month (default month)")
    create.add_argument("--admin", action="store_true", default=None, help="may read GET /admin/usage")
    actions.add_parser("list", help="list keys (names and limits; keys themselves are not stored)")
    revoke = actions.add_parser("revoke", help="remove a key")
    revoke.add_argument("name", help="the name of the key to remove")
    rotate = actions.add_parser("rotate", help="a new key for NAME, same settings; the old key stops working")
    rotate.add_argument("name", help="the name of the key to replace")
    for action in actions.choices.values():
        action.add_argument("--file", type=Path, help="keys file (default: PROXY_KEYS_FILE, else ./keys.toml)")


def _keys(args: argparse.Namespace) -> None:
    settings = _settings(argparse.Namespace())
    path: Path = args.file or settings.keys_file or Path("keys.toml")
    try:
        if args.action == "create":
            allowed = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            names = ("rpm", "tpm", "budget_tokens", "budget_amount", "budget_period", "admin")
            options = {name: getattr(args, name) for name in names}
            key = keys.create(path, args.name, allowed, **options)
            print(f"Created key {args.name!r} in {path}. It is shown once and stored only as a SHA-256 digest:")
            print(key)
        elif args.action == "list":
            _list_keys(keys.load(path), settings)
        elif args.action == "rotate":
            key = keys.rotate(path, args.name)
            print(f"Rotated key {args.name!r} in {path}: the old key stops working within a second. The new one:")
            print(key)
        else:
            keys.revoke(path, args.name)
            print(f"Revoked key {args.name!r} in {path}; running gateways drop it within a second.")
    except keys.KeysFileError as exc:
        sys.exit(f"acedata-proxy keys: {exc}")


def _list_keys(entries: list[keys.KeyEntry], settings: Settings) -> None:
    """Each key with its limits, and its spend in the current period (UTC month unless its budget says day)
    next to its budget."""
    store, prices = _ledger(settings, "keys"), _prices(settings)
    if store is None:
        print(f"acedata-proxy keys: {_missing(settings)}: spend not shown", file=sys.stderr)
    print(f"{'name':<24} {'models':<32} {'rpm':>6} {'tpm':>9} {'period':<10} {'spent':>12} {'budget':>12} admin "
          f"{'cost':>12} {'budget_amount':>13}")  # fmt: skip
    for entry in entries:
        period = period_of(entry.budget_period)
        rows = store.rows(entry.name, int(period.start // 3600)) if store is not None else []
        total = build(rows, "key", prices)["total"]
        models = ",".join(sorted(entry.models)) if entry.models is not None else "*"
        budget = entry.budget_tokens if entry.budget_tokens is not None else "-"
        cost = money.shown(total["cost"]) if total["cost"] is not None else "-"
        if total["cost"] is None and prices is not None and not total["unpriced_requests"]:
            cost = money.shown(0.0)  # no request this period: nothing spent, which is not "unpriced"
        amount = "-" if entry.budget_amount is None else f"{entry.budget_amount:.2f}"
        admin = "yes" if entry.admin else "no"
        print(f"{entry.name:<24} {models:<32} {entry.rpm or '-':>6} {entry.tpm or '-':>9} {period.label:<10} "
              f"{total['total_tokens']:>12} {budget:>12} {admin:<5} {cost:>12} {amount:>13}")  # fmt: skip
    print(
        f"cost and budget_amount in {prices.currency} ({prices.source})" if prices else "cost: PROXY_PRICES_FILE unset"
    )


def _ledger(settings: Settings, command: str) -> Store | None:
    """The ledger's store for reading, said on stderr (stdout may be csv or json); None when nothing was ever
    recorded here (no file is created)."""
    if not settings.redis_url and not (sqlite_path(settings)).exists():
        return None
    try:
        store = open_store(settings)
    except STORE_ERRORS as exc:
        sys.exit(f"acedata-proxy {command}: cannot open the usage ledger: {exc}")
    storage = store.describe()["storage"]  # /readyz's words, which never name a path: the CLI's reader may see it
    shown = "PROXY_REDIS_URL" if storage == "redis" else str(sqlite_path(settings))
    print(f"acedata-proxy {command}: reading the usage ledger in {storage} ({shown})", file=sys.stderr)
    return store


def _missing(settings: Settings) -> str:
    return (
        f"no usage ledger at {sqlite_path(settings)}: no gateway has recorded a request with this "
        "PROXY_DATA_DIR (or set PROXY_REDIS_URL to read a shared ledger)"
    )


def _usage(args: argparse.Namespace) -> None:
    settings = _settings(argparse.Namespace())
    try:
        first_hour = since_hour(args.since)
    except ReportError as exc:
        sys.exit(f"acedata-proxy usage: {exc}")
    store = _ledger(settings, "usage")
    if store is None:
        sys.exit(f"acedata-proxy usage: {_missing(settings)}")
    try:
        rows = store.rows(args.key, first_hour)
    except STORE_ERRORS as exc:
        sys.exit(f"acedata-proxy usage: cannot read the usage ledger: {exc}")
    sys.stdout.write(render(build(rows, args.by, _prices(settings)), args.format))


def _prices(settings: Settings) -> money.PriceList | None:
    """The price file in force, or None; an unusable one stops the command (and the start) in one line."""
    if settings.prices_file is None:
        return None
    try:
        return money.load(settings.prices_file)
    except money.PricesFileError as exc:
        sys.exit(f"acedata-proxy: PROXY_PRICES_FILE={settings.prices_file}: {exc}")


def _serve_options(parser: argparse.ArgumentParser, default: object) -> None:
    _listen_options(parser, default)
    parser.add_argument("--workers", type=int, default=default, help="worker processes (PROXY_WORKERS, default 1)")
    parser.add_argument("--demo", action="store_true", default=default, help="same as `acedata-proxy demo`")


def _listen_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--host", default=default, help="listening address (PROXY_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=default, help="listening port (PROXY_PORT, default 8000)")
    parser.add_argument(
        "--fd",
        type=int,
        default=default,
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
        # one line per setting, by the variable's name (the field's name means nothing to a user)
        names = variable_names()
        lines = [
            f"acedata-proxy: {names.get(str(e['loc'][0]), str(e['loc'][0]).upper())}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        sys.exit("\n".join(lines))


def _warn_unknown_variables() -> None:
    for warning in unknown_variables(os.environ):
        print(f"acedata-proxy: warning: {warning}", file=sys.stderr)


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


def _check_money(settings: Settings) -> None:
    """The price file loads, and a key with a money budget has one to be priced by."""
    if _prices(settings) is not None or settings.keys_file is None:
        return
    for entry in keys.load(settings.keys_file):
        if entry.budget_amount is not None:
            sys.exit(f"acedata-proxy: key {entry.name!r} has budget_amount but PROXY_PRICES_FILE is not set")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "keys":
        _keys(args)
        return
    if command == "usage":
        _usage(args)
        return
    if command == "fake-upstream":
        from app.fakes import demo  # the fake upstream loads only for the commands that run it

        demo.serve_fake_upstream(args.host, args.port, args.token, args.deltas, args.delay)
        return
    from app.serving import server  # uvicorn and the app load only for commands that serve
    from app.serving.address import PortInUse

    _warn_unknown_variables()
    sock = _inherited_socket(args)
    settings = _settings(args)
    _check_keys_file(settings)
    _check_money(settings)
    try:
        if command == "demo" or getattr(args, "demo", False):
            from app.fakes import demo

            demo.demo(settings, sock)
        else:
            server.serve(settings, sock)
    except (server.UnsafeBind, PortInUse) as exc:
        sys.exit(f"acedata-proxy: {exc}")
    except STORE_ERRORS as exc:
        sys.exit(f"acedata-proxy: refusing to start, the usage ledger in {settings.data_dir} cannot be opened: {exc}")
