"""Per-route limits: every route has its own RouteSettings, merchant routes and Htouhui's from their own parameters,
with defaults sized for 1,000,000 onboardings a day at a 10x peak (the arithmetic in docs/deploy.md, redone here)."""

from __future__ import annotations

import re
from typing import Any

from helpers import ROOT
from template_tools import ROUTES, deployed, load_template

HTOUHUI_PATHS = {"/htouhui/notify", "/htouhui/return"}


def _stage(resources: dict[str, Any]) -> dict[str, Any]:
    return next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway" + "V2::Stage")


def test_every_route_has_its_own_limits_from_its_sides_parameters() -> None:
    resources, _ = deployed({})
    settings = _stage(resources)["RouteSettings"]
    assert set(settings) == {f"{method.upper()} {path}" for method, path in ROUTES}
    for key, values in settings.items():
        side = "Htouhui" if key.split(" ", 1)[1] in HTOUHUI_PATHS else "Merchant"
        assert values["ThrottlingRateLimit"] == {"Ref": f"{side}RouteRateLimit"}, key
        assert values["ThrottlingBurstLimit"] == {"Ref": f"{side}RouteBurstLimit"}, key
        assert values["DetailedMetricsEnabled"] is True


def test_defaults_cover_a_million_onboardings_a_day_at_ten_times_the_average() -> None:
    parameters = load_template()["Parameters"]
    peak_onboardings = 1_000_000 / 86_400 * 10  # ~116 per second
    # per onboarding: register 1, open-account 1, user view up to 2; Htouhui: 3 notifications (one per level)
    # delivered at most twice (a retry after a slow answer), 1 browser return
    merchant_busiest = 2 * peak_onboardings
    htouhui_busiest = 3 * 2 * peak_onboardings
    assert parameters["MerchantRouteRateLimit"]["Default"] >= merchant_busiest
    assert parameters["HtouhuiRouteRateLimit"]["Default"] >= htouhui_busiest
    for side in ("Merchant", "Htouhui"):
        assert parameters[f"{side}RouteBurstLimit"]["Default"] >= parameters[f"{side}RouteRateLimit"]["Default"]
    # all five routes at their limits stay under the account's regional 10,000 requests per second
    assert (
        3 * parameters["MerchantRouteRateLimit"]["Default"] + 2 * parameters["HtouhuiRouteRateLimit"]["Default"]
        < 10_000
    )
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert re.search(r"1,000,000 onboardings", deploy)
    assert str(parameters["HtouhuiRouteRateLimit"]["Default"]) in deploy


def test_the_allow_list_reaches_the_functions_and_lints_as_a_cidr_list() -> None:
    template = load_template()
    assert template["Globals"]["Function"]["Environment"]["Variables"]["NOTIFY_ALLOWED_CIDRS"] == {
        "Ref": "NotifyAllowedCidrs"
    }
    pattern = template["Parameters"]["NotifyAllowedCidrs"]["AllowedPattern"]
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "203.0.113.0/24, 2001:db8::/32")
    assert not re.fullmatch(pattern, "203.0.113.0/24;rm")
    resources, resolver = deployed({"NotifyAllowedCidrs": "203.0.113.0/24"})
    assert resolver.resolve({"Ref": "NotifyAllowedCidrs"}) == "203.0.113.0/24"
    assert "NotifyFunction" in resources
