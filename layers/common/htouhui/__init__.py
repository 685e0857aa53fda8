"""Htouhui (海投汇) open API for merchants: the SDK. It knows nothing of AWS.

The wire protocol and its profiles (`htouhui.protocol`), typed models of every message (`htouhui.models`), the
httpx client for register and query (`htouhui.client`), the signed open-account page (`htouhui.page`) and the
SDK's errors (`htouhui.errors`). Depends on httpx, pydantic and cryptography only.

    import htouhui
    key = htouhui.load_private_key(open("merchant_private.pem").read())
    fields = htouhui.signed(business_fields, key)

Every name below is loaded on first use, so `import htouhui.protocol` does not pay for httpx or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOME: dict[str, str] = {
    **dict.fromkeys(
        (
            "BUILT_IN",
            "DEFAULT",
            "KeyFormatError",
            "MalformedMessage",
            "Profile",
            "ProfileError",
            "canonical",
            "fingerprint",
            "generate_private_key",
            "load_private_key",
            "load_profile",
            "load_public_key",
            "parse_form",
            "private_pem",
            "public_pem",
            "sign",
            "signed",
            "verify",
        ),
        "htouhui.protocol",
    ),
    **dict.fromkeys(
        (
            "BrowserReturn",
            "Notification",
            "OpenAccountForm",
            "OpenAccountNotification",
            "QueryRequest",
            "QueryResponse",
            "RegisterRequest",
            "RegisterResponse",
        ),
        "htouhui.models",
    ),
    **dict.fromkeys(("ClientOptions", "HtouhuiClient", "RetryPolicy", "Timeouts", "ENVIRONMENTS"), "htouhui.client"),
    **dict.fromkeys(("OpenAccountPage", "build_open_account_page"), "htouhui.page"),
    **dict.fromkeys(
        (
            "HtouhuiBusy",
            "HtouhuiError",
            "HtouhuiProtocolError",
            "HtouhuiRejected",
            "HtouhuiSignatureError",
            "HtouhuiTimeout",
            "HtouhuiUnreachable",
            "code_meaning",
        ),
        "htouhui.errors",
    ),
}

__all__ = [
    "BUILT_IN",
    "DEFAULT",
    "ENVIRONMENTS",
    "BrowserReturn",
    "ClientOptions",
    "HtouhuiBusy",
    "HtouhuiClient",
    "HtouhuiError",
    "HtouhuiProtocolError",
    "HtouhuiRejected",
    "HtouhuiSignatureError",
    "HtouhuiTimeout",
    "HtouhuiUnreachable",
    "KeyFormatError",
    "MalformedMessage",
    "Notification",
    "OpenAccountForm",
    "OpenAccountNotification",
    "OpenAccountPage",
    "Profile",
    "ProfileError",
    "QueryRequest",
    "QueryResponse",
    "RegisterRequest",
    "RegisterResponse",
    "RetryPolicy",
    "Timeouts",
    "build_open_account_page",
    "canonical",
    "code_meaning",
    "fingerprint",
    "generate_private_key",
    "load_private_key",
    "load_profile",
    "load_public_key",
    "parse_form",
    "private_pem",
    "public_pem",
    "sign",
    "signed",
    "verify",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'htouhui' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from htouhui.client import ENVIRONMENTS, ClientOptions, HtouhuiClient, RetryPolicy, Timeouts
    from htouhui.errors import (
        HtouhuiBusy,
        HtouhuiError,
        HtouhuiProtocolError,
        HtouhuiRejected,
        HtouhuiSignatureError,
        HtouhuiTimeout,
        HtouhuiUnreachable,
        code_meaning,
    )
    from htouhui.models import (
        BrowserReturn,
        Notification,
        OpenAccountForm,
        OpenAccountNotification,
        QueryRequest,
        QueryResponse,
        RegisterRequest,
        RegisterResponse,
    )
    from htouhui.page import OpenAccountPage, build_open_account_page
    from htouhui.protocol import (
        BUILT_IN,
        DEFAULT,
        KeyFormatError,
        MalformedMessage,
        Profile,
        ProfileError,
        canonical,
        fingerprint,
        generate_private_key,
        load_private_key,
        load_profile,
        load_public_key,
        parse_form,
        private_pem,
        public_pem,
        sign,
        signed,
        verify,
    )
