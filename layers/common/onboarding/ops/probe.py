"""Which protocol variant does a real Htouhui speak? The conformance probe and the signature explainer.

`probe` asks Htouhui's query interface about a made-up user once per candidate profile (PROTOCOL.md §8),
signed and encoded as that profile says, and reports what the server answered and whether its answer
verifies under the profile. It registers no one unless asked, and refuses the production address unless
allowed. `explain` takes a captured message (a notification's form body or an answer's JSON) and says under
which profile it verifies, with the canonical string each profile builds when it does not.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, ENVIRONMENTS, REGISTER_PATH
from htouhui.models import id_card_check_character
from onboarding.config import read_key_source

PRODUCTION_HOST: Final = urlsplit(ENVIRONMENTS["prod"]).hostname or ""
OUTCOMES: Final = {"1001": "signature refused", "1002": "parameter refused"}


class ProbeRefused(ValueError):
    """The probe will not run as asked (the production address without --allow-prod)."""


def read_key_argument(argument: str) -> str:
    """A key given on the command line: a file path, or a key source as the functions take them."""
    if not argument.startswith(("file:", "secretsmanager:", "ssm:")) and Path(argument).is_file():
        return Path(argument).read_text(encoding="ascii")
    return read_key_source(argument)


@dataclass(frozen=True)
class Trial:
    """One candidate profile tried against the server."""

    profile: protocol.Profile
    http_status: int | None
    code: str | None
    verifies: bool
    note: str

    @property
    def works(self) -> bool:
        return self.code == self.profile.success_code and self.verifies

    @property
    def outcome(self) -> str:
        if self.http_status is None:
            return f"no answer ({self.note})"
        if self.code is None:
            return f"HTTP {self.http_status}, not a signed JSON answer ({self.note})"
        if self.code == self.profile.success_code:
            return "accepted"
        return OUTCOMES.get(self.code, f"answered {self.code}")

    def line(self) -> str:
        signed = "answer verifies" if self.verifies else "answer does not verify"
        return f"{self.profile.name:<16} {self.outcome}; {signed} under {self.profile.name}"


@dataclass(frozen=True)
class ProbeTarget:
    base_url: str
    partner_id: str
    merchant_key: protocol.PrivateKey
    htouhui_keys: Sequence[protocol.PublicKey]
    query_path: str = DEFAULT_QUERY_PATH


def made_up_user() -> tuple[str, str]:
    """A third_party_user_id nobody has and a well-formed synthetic id_card (GB 11643 check digit)."""
    first17 = "11010119900101" + f"{secrets.randbelow(1000):03d}"
    return f"probe-{secrets.token_hex(6)}", first17 + id_card_check_character(first17)


def check_address(base_url: str, *, allow_prod: bool) -> None:
    if (urlsplit(base_url).hostname or "").lower() == PRODUCTION_HOST and not allow_prod:
        raise ProbeRefused(f"{base_url} is Htouhui's production address: pass --allow-prod to probe it")


def probe(
    target: ProbeTarget,
    candidates: Iterable[protocol.Profile],
    *,
    register_test_user: bool = False,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 10.0,
) -> list[Trial]:
    """Try every candidate once (a query for a made-up user; a register first if asked)."""
    user, id_card = made_up_user()
    trials = []
    with httpx.Client(base_url=target.base_url, transport=transport, timeout=timeout) as http:
        for profile in candidates:
            if register_test_user:
                mobile = "170" + f"{secrets.randbelow(10**8):08d}"
                _call(http, target, profile, REGISTER_PATH, {"mobile": mobile, "third_party_user_id": user})
            business = {"id_card": id_card, "third_party_user_id": user}
            trials.append(_call(http, target, profile, target.query_path, business))
    return trials


def _call(
    http: httpx.Client, target: ProbeTarget, profile: protocol.Profile, path: str, business: Mapping[str, str]
) -> Trial:
    common = protocol.request_common_fields(
        target.partner_id, profile=profile, request_no=protocol.new_request_no("PRB")
    )
    message = protocol.signed({**business, **common}, target.merchant_key, profile)
    try:
        if profile.request_encoding == "form":
            response = http.post(path, data=message)
        else:
            response = http.post(path, json=message)
    except httpx.HTTPError as exc:
        return Trial(profile, None, None, False, type(exc).__name__)
    try:
        body: Any = response.json()
    except ValueError:
        return Trial(profile, response.status_code, None, False, "not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return Trial(profile, response.status_code, None, False, "no code")
    verifies = protocol.verify(body, target.htouhui_keys, profile)
    return Trial(profile, response.status_code, body["code"], verifies, "")


def conclusion(trials: Sequence[Trial]) -> tuple[int, str]:
    """The last line of the report and the exit status: the profile that works, or why none does."""
    working = [trial.profile.name for trial in trials if trial.works]
    if len(working) == 1:
        return 0, f"the profile that works: {working[0]}"
    if working:
        return 0, f"the profile that works: {working[0]} (also: {', '.join(working[1:])})"
    if not trials:
        return 1, "no profile works: no candidate was tried"
    if all(trial.http_status is None for trial in trials):
        return 1, "no profile works: the server never answered (is this address allowed to reach Htouhui?)"
    accepted = [trial.profile.name for trial in trials if trial.code == trial.profile.success_code]
    if accepted:
        return 1, (
            f"no profile works: {', '.join(accepted)} accepted our request but the answer does not verify "
            "(check --htouhui-key)"
        )
    if all(trial.code == "1001" for trial in trials):
        return 1, "no profile works: every signature was refused (check --key, --partner-id, or write a profile)"
    return 1, "no profile works: " + "; ".join(f"{trial.profile.name}: {trial.outcome}" for trial in trials)


# --- explain ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    profile: protocol.Profile
    failure: str | None
    canonical: str


def read_message(text: str) -> dict[str, str]:
    """A captured message: an answer's JSON object, or a notification's (or return's) form text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        data: Any = json.loads(stripped)
        if not isinstance(data, dict):
            raise ValueError("the JSON must be one object")
        return {name: value for name, value in data.items() if isinstance(value, str)}
    return protocol.parse_form(stripped.lstrip("?"))


def explain(
    message: Mapping[str, str], keys: Sequence[protocol.PublicKey], candidates: Iterable[protocol.Profile]
) -> list[Explanation]:
    return [
        Explanation(
            profile, protocol.verification_failure(message, keys, profile), protocol.canonical(message, profile)
        )
        for profile in candidates
    ]


def explanation_lines(explanations: Sequence[Explanation]) -> tuple[int, list[str]]:
    lines = []
    for item in explanations:
        if item.failure is None:
            lines.append(f"{item.profile.name:<16} verifies")
        else:
            lines.append(f"{item.profile.name:<16} does not verify: {item.failure}")
            lines.append(f"{'':<16} canonical string: {item.canonical}")
    working = [item.profile.name for item in explanations if item.failure is None]
    if working:
        return 0, [*lines, f"verifies under: {', '.join(working)}"]
    return 1, [*lines, "verifies under no profile (a different key, a changed field, or a profile of its own)"]


def candidate_profiles(references: Sequence[str], load: Callable[[str], protocol.Profile]) -> list[protocol.Profile]:
    """The profiles named on the command line, or every built-in one."""
    return [load(reference) for reference in references] if references else list(protocol.BUILT_IN.values())
