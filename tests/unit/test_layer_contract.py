"""The rule between the layer's two packages, read from the source (every import, at any depth):
the SDK (`htouhui`) never imports the application, boto3, botocore or Powertools; the functions import the
application; the application never imports a function; the layer's module-level imports have no cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LAYER, ROOT

SDK_FORBIDDEN = ("onboarding", "boto3", "botocore", "aws_lambda_powertools", "moto")
FUNCTIONS = sorted((ROOT / "functions").glob("*/app.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(LAYER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_modules(package: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((LAYER / package).rglob("*.py"))}


def imports(path: Path, *, module_level_only: bool = False) -> Iterator[str]:
    """Every module `path` imports; with `module_level_only`, only what runs at import (no function bodies,
    no `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = list(tree.body) if module_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Try) and module_level_only:
            for inner in node.body:
                yield from imports_of_node(inner)


def imports_of_node(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        yield node.module


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("module", sorted(layer_modules("htouhui")), ids=str)
def test_the_sdk_imports_nothing_of_the_application_or_of_aws(module: str) -> None:
    path = layer_modules("htouhui")[module]
    found = sorted({name for name in imports(path) if top(name) in SDK_FORBIDDEN})
    assert found == [], f"{module} imports {found}: the SDK depends on httpx, pydantic and cryptography only"


@pytest.mark.parametrize("path", FUNCTIONS, ids=lambda path: path.parent.name)
def test_each_function_goes_through_the_application(path: Path) -> None:
    tops = {top(name) for name in imports(path)}
    assert "onboarding" in tops, f"{path.parent.name} does not import the application"
    assert "app" not in tops and "functions" not in tops


def test_the_application_never_imports_a_function() -> None:
    for module, path in layer_modules("onboarding").items():
        tops = {top(name) for name in imports(path)}
        assert not tops & {"app", "functions"}, f"{module} imports a function"


def test_the_layer_has_no_import_cycle() -> None:
    modules = {**layer_modules("htouhui"), **layer_modules("onboarding")}
    graph = {
        module: {name for name in imports(path, module_level_only=True) if name in modules and name != module}
        for module, path in modules.items()
    }
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, "import cycle: " + " -> ".join((*trail[trail.index(module) :], module))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, (*trail, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_the_contract_sees_a_violation(tmp_path: Path) -> None:
    """The reader above is not blind: a function-level import of boto3 in a module is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import boto3\n    from onboarding.store import UserStore\n")
    assert {"boto3", "onboarding.store", "onboarding.store.UserStore"} <= set(imports(sample))
    assert set(imports(sample, module_level_only=True)) == set()


def test_the_sdk_surface_is_its_lazy_table() -> None:
    import htouhui

    assert sorted(htouhui.__all__) == sorted(htouhui._HOME)  # one list, two spellings: the static one for tools
