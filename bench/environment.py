"""Each function's environment as template.yaml gives it, with local stand-ins for what AWS would supply.

Globals.Function.Environment merged with the function's own, intrinsics resolved: `!Ref` of a parameter
gives the bench's value or the parameter's Default, `!Ref` of a resource its logical id (a table's name
here), `!Sub` those combined, `!If` on the template's conditions. Key sources become `file:` paths to
the bench's key files, as a developer's machine would use them (no Secrets Manager call at cold start
either way: the functions load keys on first use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
NO_VALUE = object()


@dataclass(frozen=True)
class _Tag:
    name: str
    value: Any


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Tag(suffix, value)


_Loader.add_multi_constructor("!", _construct)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(data, dict)
    return data


class _Resolver:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()
        }
        self.parameters.update(parameters)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name == "AWS::Region":
            return "us-east-1"
        if name == "AWS::AccountId":
            return "123456789012"
        if name == "AWS::Partition":
            return "aws"
        if name == "AWS::StackName":
            return "bench"
        return name  # a resource: its logical id stands for its name

    def condition(self, name: str) -> bool:
        return bool(self.value((self.template.get("Conditions") or {})[name]))

    def value(self, node: Any) -> Any:
        if not isinstance(node, _Tag):
            return node
        if node.name == "Ref":
            return self.ref(node.value)
        if node.name == "Sub":
            text = node.value if isinstance(node.value, str) else node.value[0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.ref(m.group(1).split(".")[0])), text)
        if node.name == "GetAtt":
            return str(node.value).replace(".", "-")
        if node.name == "If":
            name, yes, no = node.value
            return self.value(yes if self.condition(name) else no)
        if node.name == "Equals":
            left, right = (self.value(item) for item in node.value)
            return str(left) == str(right)
        if node.name == "Not":
            return not self.value(node.value[0])
        raise ValueError(f"intrinsic !{node.name} is not resolved by the bench")


def function_ids(template: dict[str, Any] | None = None) -> dict[str, str]:
    """{folder name under functions/: logical id}, from each function's CodeUri."""
    template = template or load_template()
    found = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            code_uri = str(resource["Properties"]["CodeUri"]).rstrip("/")
            found[code_uri.split("/")[-1]] = logical_id
    return found


def function_environment(
    name: str,
    *,
    keys_dir: Path,
    parameters: dict[str, str] | None = None,
    template: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The variables Lambda would set for functions/<name>, key sources pointed at `keys_dir`."""
    template = template or load_template()
    resolver = _Resolver(template, {"PartnerId": "P2026000001", **(parameters or {})})
    logical_id = function_ids(template)[name]
    variables: dict[str, Any] = {}
    globals_ = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    own = template["Resources"][logical_id]["Properties"].get("Environment") or {}
    for source in (globals_.get("Variables") or {}, own.get("Variables") or {}):
        for key, node in source.items():
            value = resolver.value(node)
            if value is NO_VALUE:
                variables.pop(key, None)
            else:
                variables[key] = "" if value is None else str(value)
    files = {
        "MERCHANT_PRIVATE_KEY": keys_dir / "merchant_private.pem",
        "HTOUHUI_PUBLIC_KEY": keys_dir / "htouhui_public.pem",
        "HTOUHUI_PUBLIC_KEY_NEXT": keys_dir / "htouhui_public.pem",
    }
    for key, path in files.items():
        if key in variables:
            variables[key] = f"file:{path}"
    return {key: value for key, value in variables.items() if value != ""}
