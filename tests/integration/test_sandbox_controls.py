"""The sandbox's `/_sandbox/` controls and its command line, over real HTTP, seen through the project's client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import ROOT, Receiver, make_client, open_account_form, valid_id_card
from sandbox.server import RunningSandbox

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.errors import HtouhuiBusy, HtouhuiProtocolError, HtouhuiSignatureError, HtouhuiTimeout
from htouhui.models import QueryRequest, RegisterRequest

ALICE = RegisterRequest(mobile="13800138000", third_party_user_id="alice")


def fault(sandbox: RunningSandbox, **body: object) -> dict[str, object]:
    response = httpx.post(sandbox.url + "/_sandbox/faults", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"busy": True}, HtouhuiBusy),
        ({"error_rate": 1.0}, HtouhuiBusy),
        ({"bad_signature": True}, HtouhuiSignatureError),
        ({"unsigned": True}, HtouhuiSignatureError),
        ({"not_json": True}, HtouhuiProtocolError),
    ],
)
def test_interface_faults_seen_by_the_client(
    sandbox: RunningSandbox, client: HtouhuiClient, settings: dict[str, object], error: type[Exception]
) -> None:
    fault(sandbox, interface="register", count=1, **settings)
    with pytest.raises(error):
        client.register(ALICE)
    assert client.register(ALICE).code == "0000"  # count=1: the next request is served normally


def test_9999_is_signed_by_the_sandbox(sandbox: RunningSandbox, htouhui_public_key: protocol.PublicKey) -> None:
    fault(sandbox, interface="query", busy=True)
    body = httpx.post(sandbox.url + "/openapi/user/query", json={}).json()
    assert body["code"] == "9999" and protocol.verify(body, htouhui_public_key)


def test_client_retries_through_a_transient_busy(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    fault(sandbox, interface="register", busy=True, count=2)
    retrying = make_client(sandbox.url, merchant_private_key, htouhui_public_key, attempts=3)
    assert retrying.register(ALICE).code == "0000"


def test_timeout_fault_holds_the_request_past_the_clients_timeout(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    fault(sandbox, interface="query", timeout=1.0, count=1)
    impatient = make_client(sandbox.url, merchant_private_key, htouhui_public_key, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(HtouhuiTimeout):
        impatient.query(QueryRequest(id_card=valid_id_card(), third_party_user_id="alice"))
    assert time.monotonic() - started < 0.9


def test_latency_fault(sandbox: RunningSandbox, client: HtouhuiClient) -> None:
    fault(sandbox, interface="register", latency_ms=300)
    started = time.monotonic()
    assert client.register(ALICE).code == "0000"
    assert time.monotonic() - started >= 0.3
    view = httpx.get(sandbox.url + "/_sandbox/faults").json()
    assert view["interfaces"]["register"]["latency_ms"] == 300  # no count: stays until cleared
    fault(sandbox, interface="register", clear=True)
    assert httpx.get(sandbox.url + "/_sandbox/faults").json()["interfaces"] == {}


def test_open_account_busy_and_bad_return_signature(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    user_id = client.register(ALICE).htouhui_user_id
    assert user_id
    fault(sandbox, interface="openAccount", busy=True, count=1)
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    busy = httpx.post(sandbox.url + "/openapi/user/openAccount", data=form)
    assert busy.status_code == 503 and busy.headers["x-htouhui-code"] == "9999"
    fault(sandbox, interface="openAccount", bad_signature=True, count=1)
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    page = httpx.post(sandbox.url + "/openapi/user/openAccount", data=form)
    action = re.search(r'action="([^"]+)"', page.text)
    assert action
    done = httpx.post(sandbox.url + action.group(1), data={"outcome": "fail"})
    query = dict(httpx.URL(done.headers["location"]).params)
    assert query["status"] == "0" and not protocol.verify(query, htouhui_public_key)


def test_fault_validation(sandbox: RunningSandbox) -> None:
    for body in ({"interface": "nope"}, {"interface": "register", "error_rate": 2}, {"interface": "query", "x": 1}):
        assert httpx.post(sandbox.url + "/_sandbox/faults", json=body).status_code == 400


def test_seed_a_thousand_users_in_one_call(sandbox: RunningSandbox, client: HtouhuiClient) -> None:
    users = [
        {"third_party_user_id": f"bench-{n:05d}", "status": n % 4, "id_card": valid_id_card()} for n in range(1000)
    ]
    started = time.monotonic()
    response = httpx.post(sandbox.url + "/_sandbox/users", json={"users": users}, timeout=30)
    assert response.status_code == 201 and len(response.json()["users"]) == 1000
    assert time.monotonic() - started < 10
    listed = httpx.get(sandbox.url + "/_sandbox/users").json()["users"]
    assert len(listed) == 1000
    assert len({user["htouhui_user_id"] for user in listed}) == 1000
    answer = client.query(QueryRequest(id_card=valid_id_card(), third_party_user_id="bench-00003"))
    assert answer.status == "3" and answer.bank_card_number


def test_users_view_masks_personal_values(sandbox: RunningSandbox, client: HtouhuiClient) -> None:
    client.register(ALICE)
    httpx.post(
        sandbox.url + "/_sandbox/users", json={"third_party_user_id": "alice", "status": 1, "id_card": valid_id_card()}
    ).raise_for_status()
    text = httpx.get(sandbox.url + "/_sandbox/users").text
    assert "13800138000" not in text and valid_id_card() not in text
    one = httpx.get(sandbox.url + "/_sandbox/users/alice").json()
    assert one["status"] == "1" and one["mobile"].startswith("138") and one["mobile"].endswith("8000")


def test_reset_forgets_everything(sandbox: RunningSandbox, client: HtouhuiClient, receiver: Receiver) -> None:
    client.register(ALICE)
    fault(sandbox, interface="register", latency_ms=1)
    assert httpx.post(sandbox.url + "/_sandbox/reset").json() == {"reset": True}
    assert httpx.get(sandbox.url + "/_sandbox/users").json()["users"] == []
    assert httpx.get(sandbox.url + "/_sandbox/faults").json()["interfaces"] == {}
    assert httpx.get(sandbox.url + "/_sandbox/deliveries").json()["deliveries"] == []


def test_health_and_keys(sandbox: RunningSandbox, htouhui_public_key: protocol.PublicKey) -> None:
    health = httpx.get(sandbox.url + "/_sandbox/health").json()
    assert health["status"] == "ok" and health["partner_id"] == "P2026000001"
    assert health["htouhui_public_key_fingerprint"] == protocol.fingerprint(htouhui_public_key)
    pem = httpx.get(sandbox.url + "/_sandbox/keys").json()["htouhui_public_key"]
    assert protocol.fingerprint(protocol.load_public_key(pem)) == protocol.fingerprint(htouhui_public_key)


def test_state_file_keeps_users_across_restarts(
    start_sandbox: Callable[..., RunningSandbox],
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
    tmp_path: Path,
) -> None:
    state = tmp_path / "sandbox.json"
    first = start_sandbox(state_file=state)
    made = make_client(first.url, merchant_private_key, htouhui_public_key).register(ALICE).htouhui_user_id
    first.stop()
    second = start_sandbox(state_file=state)
    again = make_client(second.url, merchant_private_key, htouhui_public_key).register(ALICE)
    assert again.htouhui_user_id == made
    assert "13800138000" in state.read_text()  # a local file of test data, never a log


def test_cli_drives_a_running_sandbox(
    sandbox: RunningSandbox, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from sandbox.__main__ import main

    url = ["--url", sandbox.url]
    assert main(["seed", *url, "--user", "cli", "--count", "3", "--status", "1", "--id-card", valid_id_card()]) == 0
    capsys.readouterr()
    assert main(["users", *url]) == 0
    assert len(json.loads(capsys.readouterr().out)["users"]) == 3
    assert main(["fault", "notify", *url, "--duplicate", "1"]) == 0
    assert main(["trigger", *url, "--user", "cli-00001", "--status", "3", "--notify-url", receiver.url]) == 0
    receiver.wait_for(2)
    capsys.readouterr()
    assert main(["deliveries", *url, "--user", "cli-00001"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["deliveries"][0]["status"] == "3"
    assert main(["fail-step", *url, "--user", "cli-00002", "--step", "password"]) == 0
    assert main(["fault", "register", *url, "--busy", "--count", "1"]) == 0
    assert main(["health", *url]) == 0
    assert main(["reset", *url]) == 0
    capsys.readouterr()
    assert main(["trigger", *url, "--user", "ghost"]) == 1


def test_cli_serve_makes_keys_and_prints_what_it_serves(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT / "local")]),
        "SANDBOX_TIME_SCALE": "0.01",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--keys-dir", str(keys), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            match = re.search(r"Htouhui sandbox on (http://\S+)", line)
            url = match.group(1) if match else None
        assert url, lines
        for name in ("htouhui_private.pem", "htouhui_public.pem", "merchant_private.pem", "merchant_public.pem"):
            assert (keys / name).exists()
        health = httpx.get(url + "/_sandbox/health").json()
        assert health["time_scale"] == 0.01
        merchant = protocol.load_private_key((keys / "merchant_private.pem").read_text())
        sandbox_key = protocol.load_public_key((keys / "htouhui_public.pem").read_text())
        assert health["merchant_public_key_fingerprint"] == protocol.fingerprint(merchant)
        assert make_client(url, merchant, sandbox_key).register(ALICE).code == "0000"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_keys_use_the_merchants_existing_pair_and_keep_only_its_public_half(
    tmp_path: Path, merchant_private_key: protocol.PrivateKey
) -> None:
    from sandbox.keys import load_or_make_keys

    (tmp_path / "merchant_private.pem").write_bytes(protocol.private_pem(merchant_private_key))
    keys = load_or_make_keys(tmp_path)
    assert protocol.fingerprint(keys.merchant_public) == protocol.fingerprint(merchant_private_key)
    assert (tmp_path / "merchant_public.pem").exists() and (tmp_path / "htouhui_public.pem").exists()
    private_keys = [value for value in vars(keys).values() if isinstance(value, type(merchant_private_key))]
    assert private_keys == [keys.htouhui_private]  # the merchant's private key is not kept
    again = load_or_make_keys(tmp_path)  # a second run makes nothing new
    assert protocol.fingerprint(again.htouhui_private) == protocol.fingerprint(keys.htouhui_private)
    assert again.notes == []
