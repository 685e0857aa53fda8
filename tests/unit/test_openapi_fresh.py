"""openapi.json is what the handlers generate (fails when it is stale: run `make openapi`)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from helpers import ROOT


def _generator() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("gen_openapi", str(ROOT / "scripts" / "gen-openapi"))
    spec = importlib.util.spec_from_loader("gen_openapi", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_committed_openapi_matches_the_handlers() -> None:
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == _generator().generate(), "openapi.json is stale: run `make openapi` and commit it"


def test_document_covers_the_merchant_routes_with_our_error_shape() -> None:
    document: dict[str, Any] = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/users", "post"),
        ("/users/{third_party_user_id}/open-account", "post"),
        ("/users/{third_party_user_id}", "get"),
    }
    register = document["paths"]["/users"]["post"]
    assert {"200", "201", "400", "409", "502", "503", "504"} <= set(register["responses"])
    for item in document["paths"].values():
        for operation in item.values():
            assert "422" not in operation["responses"]
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorResponse"
                    }
    assert all(
        operation["security"] == [{"sigv4": []}] for item in document["paths"].values() for operation in item.values()
    )
    assert document["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    body = document["components"]["schemas"]["RegisterBody"]
    assert set(body["required"]) == {"third_party_user_id", "mobile"}


def _table_codes(path: Path) -> set[str]:
    """The `code` column of a markdown error table (| HTTP | `code` | ... |)."""
    return set(re.findall(r"^\| [0-9]{3} \| `([a-z_]+)` \|", path.read_text(encoding="utf-8"), re.MULTILINE))


def test_the_error_code_is_an_enum_of_every_code_the_mapper_answers() -> None:
    document: dict[str, Any] = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    enum = set(document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"])
    spec = _table_codes(ROOT / "docs" / "spec" / "API.md")
    ours = _table_codes(ROOT / "docs" / "handlers.md")
    assert len(spec) == 7 and spec <= ours  # API.md's table, and ours adds what the spec is silent on
    mapper = (ROOT / "layers" / "common" / "onboarding" / "api.py").read_text(encoding="utf-8")
    answered = set(re.findall(r"ApiError\(\s*[0-9]{3},\s*\"([a-z_]+)\"", mapper))
    assert enum == ours == answered, (enum ^ ours, enum ^ answered)
    assert ours - spec == {"unavailable", "internal_error"}


def test_answers_may_grow_requests_stay_closed_and_the_server_is_a_variable() -> None:
    document: dict[str, Any] = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    assert schemas["RegisterBody"]["additionalProperties"] is False
    assert schemas["OpenAccountBody"]["additionalProperties"] is False
    for answer in ("UserView", "ErrorResponse", "ErrorDetail", "OpenAccountAnswer"):
        assert schemas[answer].get("additionalProperties", True) is not False, answer
    (server,) = document["servers"]
    assert server["url"] == "{ApiUrl}" and server["variables"]["ApiUrl"]["default"].startswith("http")
