"""docs/contract.md stays true: every setting, route and command it names exists in the code (Settings, the
served route table, the argparse parser), and every setting and command the code has is named there."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pytest
from fastapi import FastAPI

from app.cli import _parser
from app.main import create_app
from app.proxy.dispatch import Dispatcher
from app.settings import Settings, variable_names
from tests.helpers import ROOT

CONTRACT = (ROOT / "docs" / "contract.md").read_text()
QUOTED = re.findall(r"`([^`]+)`", CONTRACT)
VARIABLE = re.compile(r"\b(?:PROXY|ACEDATACLOUD)_[A-Z_]+\b")
ROUTE = re.compile(r"^(GET|POST|HEAD|PUT|PATCH|DELETE) (/\S*)$")


def served() -> set[str]:
    """Every "METHOD /path" the gateway answers: the dispatcher's table and the FastAPI app's own routes."""
    app: Any = create_app(Settings(_env_file=None))
    while not isinstance(app, Dispatcher):
        app = app.app
    fastapi = app.fallback
    assert isinstance(fastapi, FastAPI)
    own = {
        f"{method} {getattr(route, 'path', '')}" for route in fastapi.routes for method in getattr(route, "methods", ())
    }
    return set(fastapi.state.served) | own


def commands() -> dict[str, argparse.ArgumentParser]:
    """Each command line the parser knows ("", "serve", "keys", "keys create", ...) and its parser."""
    found, pending = {}, [("", _parser())]
    while pending:
        name, parser = pending.pop()
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(f"{name} {sub}".strip(), choice) for sub, choice in action.choices.items()]
    return found


def test_every_setting_named_is_read_and_every_setting_is_named():
    named = {match for quoted in QUOTED for match in VARIABLE.findall(quoted)}
    known = set(variable_names().values())
    assert named - known == set(), "named in docs/contract.md, read by no setting"
    assert known - named == set(), "read by a setting, missing from docs/contract.md"


def test_every_route_named_is_served():
    routes = {f"{m[1]} {m[2]}" for quoted in QUOTED for part in quoted.split(", ") if (m := ROUTE.match(part))}
    assert len(routes) > 15
    assert routes - served() == set()


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_command_is_named_with_options_that_exist(command: str):
    parsers = commands()
    uses = [q.removeprefix("acedata-proxy").strip() for q in QUOTED if q.startswith("acedata-proxy")]
    uses += [q for q in QUOTED if q.split(" ")[0] in parsers]
    assert command == "" or any(use.startswith(command) for use in uses), f"{command!r} is not in the contract"
    for use in (use for use in uses if use.startswith(command)):
        words = use.replace("[", " ").replace("]", " ").replace("|", " ").split()
        prefixes = [words[: n + 1] for n in range(len(words)) if " ".join(words[: n + 1]) in parsers]
        longest: list[str] = max(prefixes, key=len, default=[])
        options = {o for o in commands()[" ".join(longest)]._option_string_actions}
        options |= set(commands()[""]._option_string_actions)
        assert {w for w in words if w.startswith("--")} - options == set(), use
