"""openapi.json is what the handlers generate (fails when it is stale: run `make openapi`)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
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
    assert document["security"] == [{"sigv4": []}]
    body = document["components"]["schemas"]["RegisterBody"]
    assert set(body["required"]) == {"third_party_user_id", "mobile"}
