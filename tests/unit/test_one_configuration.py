"""One configuration: every environment variable the layer and the functions read is declared in
onboarding.config.SETTINGS (once, with its default), and only onboarding/config.py touches the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import ROOT
from template_tools import load_template

from onboarding import config

# The one module that may read the process environment (config.environ() and Settings.from_env).
ALLOWED = {Path("layers/common/onboarding/config.py")}
# Read by Powertools, boto3 or the Lambda runtime themselves, never by the layer's code.
READ_BY_LIBRARIES = {"POWERTOOLS_LOG_LEVEL"}
# Set by the Lambda runtime, not by the template.
SET_BY_LAMBDA = {"AWS_LAMBDA_INITIALIZATION_TYPE"}


def environment_reads(source: str) -> list[tuple[int, str]]:
    """Where a module reads the environment: os.environ / os.getenv / os.environb / os.putenv / os.unsetenv, by
    attribute or by a `from os import ...` name (line, what)."""
    tree = ast.parse(source)
    touched = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os"
        for alias in node.names
        if alias.name in touched
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in touched:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append((node.lineno, f"os.{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in names:
            found.append((node.lineno, node.id))
    return found


def modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for top in ("layers", "functions")
        for path in (ROOT / top).rglob("*.py")
        if ".aws-sam" not in path.parts
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nx = os.environ['A']\n", [(2, "os.environ")]),
        ("import os\nx = os.environ.get('A')\n", [(2, "os.environ")]),
        ("import os\nx = os.getenv('A', 'b')\n", [(2, "os.getenv")]),
        ("from os import environ\nx = environ.get('A')\n", [(2, "environ")]),
        ("from os import getenv as g\nx = g('A')\n", [(2, "g")]),
        ("import os\nx = os.path.join('a', 'b')\nenviron = {}\ny = environ.get('A')\n", []),
    ],
)
def test_the_scan_finds_environment_reads(source: str, expected: list[tuple[int, str]]) -> None:
    assert environment_reads(source) == expected


def test_only_config_reads_the_environment() -> None:
    assert modules(), "no modules found under layers/ and functions/"
    readers = {
        str(path): reads
        for path in modules()
        if path not in ALLOWED and (reads := environment_reads((ROOT / path).read_text(encoding="utf-8")))
    }
    assert readers == {}, (
        "read the environment through onboarding.config (a Setting in SETTINGS, then config.setting(key) or "
        f"Settings.from_env), not directly: {readers}"
    )
    assert environment_reads((ROOT / "layers/common/onboarding/config.py").read_text(encoding="utf-8"))


def test_every_variable_the_template_sets_is_declared_once() -> None:
    variables = [setting.variable for setting in config.SETTINGS.values()]
    assert len(variables) == len(set(variables)), "a variable declared twice in SETTINGS"
    template = load_template()
    given = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            given |= set(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    assert given - READ_BY_LIBRARIES - set(variables) == set(), "the template sets variables SETTINGS does not declare"
    assert set(variables) - SET_BY_LAMBDA - given == set(), "SETTINGS declares variables the template never sets"


def test_a_setting_read_on_its_own_has_its_default_and_its_rule() -> None:
    assert config.setting("event_bus_name", {}) == "default"
    assert config.setting("event_bus_name", {"EVENT_BUS_NAME": "  bus-1 "}) == "bus-1"
    assert config.setting("prime_htouhui_keys", {"PRIME_HTOUHUI_KEYS": "TRUE"}) is True
    assert config.setting("prime_htouhui_keys", {}) is False
    assert config.setting("service_name", {"POWERTOOLS_SERVICE_NAME": " "}) == "htouhui-onboarding"
    with pytest.raises(ValueError, match="must be one of"):
        config.setting("environment", {"HTOUHUI_ENV": "nowhere"})


def test_settings_read_on_their_own_do_not_stop_the_others() -> None:
    """A broken allow-list fails the notify route closed (source_ip); it is not a problem of Settings.from_env."""
    env = {
        "HTOUHUI_PARTNER_ID": "P1",
        "MERCHANT_PRIVATE_KEY": "x",
        "HTOUHUI_PUBLIC_KEY": "y",
        "NOTIFY_ALLOWED_CIDRS": "not-a-network",
        "NOTIFICATION_HISTORY_DAYS": "1",
    }
    assert config.Settings.from_env(env).partner_id == "P1"
