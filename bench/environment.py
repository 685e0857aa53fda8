"""Each function's environment as template.yaml gives it, read by the local stack (`stack.template`), with the
bench's key files for what a secret store would supply.

Key sources become `file:` paths to the bench's key files, as a developer's machine would use them (no Secrets
Manager call at cold start either way: the functions load keys on first use); what the template leaves empty is
left out.
"""

from __future__ import annotations

from pathlib import Path

from stack.inprocess import TEMPLATE, Functions
from stack.template import load

ROOT = TEMPLATE.parent
PARTNER_ID = "P2026000001"
KEY_FILES = {
    "MERCHANT_PRIVATE_KEY": "merchant_private.pem",
    "HTOUHUI_PUBLIC_KEY": "htouhui_public.pem",
    "HTOUHUI_PUBLIC_KEY_NEXT": "htouhui_public.pem",
}


def functions(parameters: dict[str, str] | None = None) -> Functions:
    """The template's functions, with the bench's partner id (and `parameters`) for its parameters."""
    return Functions(load(TEMPLATE, parameter_overrides={"PartnerId": PARTNER_ID, **(parameters or {})}))


def function_ids(source: Functions | None = None) -> dict[str, str]:
    """{folder name under functions/: logical id} of the template's functions."""
    return {function.code_uri.name: logical for logical, function in (source or functions()).template.functions.items()}


def function_environment(
    name: str, *, keys_dir: Path, parameters: dict[str, str] | None = None, source: Functions | None = None
) -> dict[str, str]:
    """The variables Lambda would set for functions/<name> (the template read with `parameters`, or `source`),
    key sources pointed at `keys_dir`."""
    variables = dict((source or functions(parameters)).function(name).environment)
    for key, file_name in KEY_FILES.items():
        if key in variables:
            variables[key] = f"file:{keys_dir / file_name}"
    return {key: value for key, value in variables.items() if value != ""}
