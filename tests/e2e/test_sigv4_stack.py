"""`STACK_IAM=1`: the real local stack (`python -m stack` on free ports) requires SigV4 on every AWS_IAM route of
template.yaml. Its merchant routes are called through two real clients, with the credentials of the shared-
credentials file the first run made: botocore's `SigV4Auth` with httpx (credentials through a boto3 Session and
the `htouhui-local` profile) and Debian's `curl --aws-sigv4`. Unsigned, wrong-secret and 20-minute-old requests
get API Gateway's 403 and store nothing. Undeclared methods get API Gateway's 404, with and without STACK_IAM."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from helpers import ROOT
from stack_process import StackProcess, running_stack

pytestmark = pytest.mark.slow

MOBILE = "13800138000"
MOBILES = {"botocore": "13800138001", "curl": "13800138002"}  # one per registered user (the sandbox's rule)
OPEN = {"id_card": "11010519491231002X", "real_name": "张三"}
PROFILE = "htouhui-local"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("iam"), STACK_IAM="1", AWS_REGION="us-east-1") as process:
        yield process


@pytest.fixture(scope="module")
def credentials(stack: StackProcess) -> Credentials:
    """As a merchant's code gets them: a boto3 Session on the profile, from the file the stack made (0600)."""
    path = stack.folder / "keys" / "iam-credentials"
    assert path.stat().st_mode & 0o777 == 0o600
    assert f"[{PROFILE}]" in path.read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        found = boto3.Session(profile_name=PROFILE).get_credentials()
    assert found is not None
    frozen = found.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def botocore_call(
    credentials: Credentials, method: str, url: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    """SigV4Auth signs (service execute-api, us-east-1), httpx sends exactly what was signed."""
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"content-type": "application/json"} if body is not None else {}
    request = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
    return httpx.request(method, url, content=data, headers=dict(request.headers.items()), timeout=30)


def curl_call(credentials: Credentials, method: str, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """Debian's curl signs (`--aws-sigv4 aws:amz:us-east-1:execute-api`); its status and body as an httpx.Response."""
    if shutil.which("curl") is None or "--aws-sigv4" not in _curl_help():
        pytest.skip("this curl has no --aws-sigv4 (curl 7.75 or newer has it)")
    command = ["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:execute-api"]
    command += ["--user", f"{credentials.access_key}:{credentials.secret_key}", "-X", method, url]
    command += ["-o", "-", "-w", "\n%{http_code}"]
    if body is not None:
        command += ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
    done = subprocess.run(command, capture_output=True, timeout=60, check=True)
    content, _, status = done.stdout.rpartition(b"\n")
    return httpx.Response(int(status), content=content)


def _curl_help() -> str:
    return subprocess.run(["curl", "--help", "all"], capture_output=True, text=True, check=False).stdout


CLIENTS = {"botocore": botocore_call, "curl": curl_call}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_every_merchant_route_through_a_real_signing_client(
    stack: StackProcess, credentials: Credentials, client: str
) -> None:
    call = CLIENTS[client]
    user = f"u-sigv4-{client}"
    person = {"third_party_user_id": user, "mobile": MOBILES[client]}
    registered = call(credentials, "POST", f"{stack.url}/users", person)
    assert registered.status_code == 201, registered.text
    assert registered.json()["third_party_user_id"] == user
    again = call(credentials, "POST", f"{stack.url}/users", person)
    assert again.status_code == 200, again.text

    form = call(credentials, "POST", f"{stack.url}/users/{user}/open-account", OPEN)
    assert form.status_code == 200, form.text
    assert form.json()["fields"]["third_party_user_id"] == user
    assert form.json()["action"].startswith(stack.sandbox_url)

    view = call(credentials, "GET", f"{stack.url}/users/{user}")
    assert view.status_code == 200, view.text
    assert view.json()["third_party_user_id"] == user
    refreshed = call(credentials, "GET", f"{stack.url}/users/{user}?refresh=true")
    assert refreshed.status_code == 200, refreshed.text


def test_the_verified_caller_is_in_the_log_line_not_the_secret(stack: StackProcess, credentials: Credentials) -> None:
    botocore_call(credentials, "GET", f"{stack.url}/users/u-nobody")
    assert credentials.secret_key not in stack.text()


def _nothing_stored(stack: StackProcess, credentials: Credentials, user: str) -> None:
    answer = botocore_call(credentials, "GET", f"{stack.url}/users/{user}")
    assert answer.status_code == 404, answer.text


def test_unsigned_is_refused_and_stores_nothing(stack: StackProcess, credentials: Credentials) -> None:
    for method, path, body in [
        ("POST", "/users", {"third_party_user_id": "u-unsigned", "mobile": MOBILE}),
        ("POST", "/users/u-unsigned/open-account", OPEN),
        ("GET", "/users/u-unsigned", None),
    ]:
        answer = httpx.request(method, stack.url + path, json=body, timeout=30)
        assert answer.status_code == 403, answer.text
        assert answer.json() == {"message": "Missing Authentication Token"}
        assert answer.headers["content-type"] == "application/json"
    _nothing_stored(stack, credentials, "u-unsigned")


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_wrong_secret_is_refused_and_stores_nothing(
    stack: StackProcess, credentials: Credentials, client: str
) -> None:
    wrong = Credentials(credentials.access_key, "x" + credentials.secret_key[1:])
    user = f"u-wrong-{client}"
    answer = CLIENTS[client](wrong, "POST", f"{stack.url}/users", {"third_party_user_id": user, "mobile": MOBILE})
    assert answer.status_code == 403, answer.text
    assert answer.json()["message"].startswith(MISMATCH)
    _nothing_stored(stack, credentials, user)


def test_an_unknown_key_is_refused(stack: StackProcess, credentials: Credentials) -> None:
    stranger = Credentials("AKIAUNKNOWNUNKNOWN00", credentials.secret_key)
    answer = botocore_call(stranger, "GET", f"{stack.url}/users/u-nobody")
    assert answer.status_code == 403
    assert answer.json() == {"message": "The security token included in the request is invalid."}


def test_a_twenty_minute_old_signature_is_refused_and_stores_nothing(
    stack: StackProcess, credentials: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed correctly by botocore, but dated 20 minutes ago (the client's clock moved, not the stack's)."""
    then = datetime.now(UTC) - timedelta(minutes=20)
    monkeypatch.setattr(
        botocore.auth,
        "get_current_datetime",
        lambda remove_tzinfo=True: then.replace(tzinfo=None) if remove_tzinfo else then,
    )
    user = "u-old"
    answer = botocore_call(credentials, "POST", f"{stack.url}/users", {"third_party_user_id": user, "mobile": MOBILE})
    assert answer.status_code == 403, answer.text
    message = answer.json()["message"]
    stamp = then.strftime("%Y%m%dT%H%M%SZ")
    assert re.fullmatch(
        rf"Signature expired: {stamp} is now earlier than \d{{8}}T\d{{6}}Z \(\d{{8}}T\d{{6}}Z - 5 min\.\)", message
    ), message
    monkeypatch.undo()
    _nothing_stored(stack, credentials, user)


@pytest.mark.parametrize("method", ["TRACE", "QUERY"])
def test_undeclared_methods_are_not_found(stack: StackProcess, method: str) -> None:
    for path in ("/users", "/users/u-1", "/htouhui/notify"):
        answer = httpx.request(method, stack.url + path, timeout=30)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == b'{"message":"Not Found"}'


def test_without_stack_iam_unsigned_calls_are_served_and_undeclared_methods_not_found(tmp_path: Path) -> None:
    with running_stack(tmp_path, sandbox=False, STACK_IAM="") as plain:
        answer = httpx.post(f"{plain.url}/users/u-1/open-account", json=OPEN, timeout=30)
        assert answer.status_code == 404, answer.text  # served: the function answers that u-1 is unknown
        assert answer.json()["error"]["code"] == "not_found"
        for method in ("TRACE", "QUERY", "PATCH"):
            refused = httpx.request(method, f"{plain.url}/users/u-1", timeout=30)
            assert (refused.status_code, refused.content) == (404, b'{"message":"Not Found"}')
            assert refused.headers["content-type"] == "application/json"
        assert not (tmp_path / "keys" / "iam-credentials").exists()


# --- the third client: generated from openapi.json by openapi-python-client -------------------------------------


class SigV4Hook(httpx.Auth):
    """botocore's SigV4Auth as an httpx auth hook: how a generated httpx client is signed (docs/integrate.md)."""

    requires_request_body = True  # the body's SHA-256 is signed

    def __init__(self, credentials: Credentials, region: str = "us-east-1") -> None:
        self.signer = SigV4Auth(credentials, "execute-api", region)

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        headers = {"content-type": request.headers["content-type"]} if "content-type" in request.headers else {}
        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        self.signer.add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        yield request


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A client package generated now from the committed openapi.json (a pinned dev dependency, run as a tool)."""
    import importlib
    import os
    import sys

    folder = tmp_path_factory.mktemp("generated")
    tool = Path(sys.executable).parent / "openapi-python-client"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(tool), "generate", "--path", str(ROOT / "openapi.json"), "--meta", "none"]
    command += ["--output-path", str(folder / "merchant_api")]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr  # every schema understood
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("merchant_api")
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == "merchant_api"]:
            del sys.modules[name]


def test_a_client_generated_from_openapi_json_drives_the_stack(
    stack: StackProcess, credentials: Credentials, generated: Any
) -> None:
    import importlib

    register = importlib.import_module("merchant_api.api.users.register_user")
    open_account = importlib.import_module("merchant_api.api.users.open_account")
    get_user = importlib.import_module("merchant_api.api.users.get_user")
    models = importlib.import_module("merchant_api.models")
    signed = generated.Client(base_url=stack.url, httpx_args={"auth": SigV4Hook(credentials)})
    user = "u-sigv4-generated"

    answer = register.sync_detailed(
        client=signed, body=models.RegisterBody(third_party_user_id=user, mobile="13800138003")
    )
    assert answer.status_code == 201, answer.content
    assert isinstance(answer.parsed, models.UserView) and answer.parsed.third_party_user_id == user
    form = open_account.sync(user, client=signed, body=models.OpenAccountBody(**OPEN))
    assert isinstance(form, models.OpenAccountAnswer), form.to_dict()
    assert form.action.startswith(stack.sandbox_url)
    view = get_user.sync(user, client=signed, refresh=True)
    assert isinstance(view, models.UserView) and view.stage.value == "OPEN_REQUESTED"

    missing = get_user.sync_detailed("u-nobody", client=signed)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorResponse)
    assert missing.parsed.error.code == models.ErrorDetailCode.NOT_FOUND  # the code is an enum a client can switch on

    grown = models.UserView.from_dict({**view.to_dict(), "a_field_added_later": True})  # answers may grow
    assert grown.third_party_user_id == user and grown["a_field_added_later"] is True

    unsigned = get_user.sync_detailed(user, client=generated.Client(base_url=stack.url))
    assert unsigned.status_code == 403  # the same client, unsigned, is refused by the SigV4 check
