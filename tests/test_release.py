"""One version, written once (app/__init__.py): the installed package, `--version` and the CHANGELOG agree."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from app import __version__
from tests.helpers import ROOT


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    assert importlib.metadata.version("acedata-proxy") == __version__


def test_the_changelog_names_the_current_version_last_released():
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert headings[1] == __version__
