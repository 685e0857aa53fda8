"""The local SigV4 verifier (local/stack/sigv4.py) against AWS's published Signature Version 4 test suite.

The suite (`aws4_testsuite`, Apache-2.0, from AWS's aws-sig-v4-test-suite) is not committed: it is fetched at
test time from PyPI as botocore's source distribution, pinned below, and cached under the system's temporary
directory. Each vector is a raw request (.req) with its canonical request (.creq), string to sign (.sts) and
Authorization header (.authz), signed with the suite's credentials on 2015-08-30T12:36:00Z for the service
"service" in us-east-1.

For each vector, this checks our canonical request, string to sign and Authorization header against the files,
then that the verifier accepts the request carrying that Authorization (and refuses it with one signature
character changed). No vector is skipped; the ones botocore's own run of the suite skips, and the quirks:

- normalize-path/get-space has a space in its request line (`GET /example space/ HTTP/1.1`): Python's HTTP
  parser refuses it, so the .req files are parsed here by hand (method, last word the version, the path between);
- get-vanilla-query-order-key, -key-case, -value repeat a query name: botocore's signer keeps one value per name,
  our canonical query keeps them all, sorted by name then value, as the suite wants;
- get-header-value-multiline folds a header over three lines (obsolete line folding): the continuation lines
  join the value with one space, as the .creq shows;
- get-vanilla-with-session-token's .req lacks the token that its .creq signs (the signer adds it), and
  post-sts-header-after's token is added after signing (so it is not in the signed headers): both are added here
  as the suite's readme describes, with the token as the credentials' session token;
- post-x-www-form-urlencoded(-parameters): the body is hashed as sent, never parsed as parameters;
- the .sreq files are not used: get-vanilla-with-session-token's carries get-vanilla's signature, not the one
  its .authz holds.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "local"))

from stack import sigv4

# The installed botocore (pinned in requirements-run.txt): its sdist carries tests/unit/auth/aws4_testsuite.
BOTOCORE = importlib.metadata.version("botocore")
SUITE_PATH = f"botocore-{BOTOCORE}/tests/unit/auth/aws4_testsuite"
CREDENTIALS = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SIGNED_AT = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
SERVICE, REGION = "service", "us-east-1"
STS_TOKEN_VECTORS = {"post-sts-token/post-sts-header-before", "post-sts-token/post-sts-header-after"}


def _download_suite(cache: Path) -> Path:
    suite = cache / "aws4_testsuite"
    if (suite / "get-vanilla" / "get-vanilla.req").exists():
        return suite
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        try:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"]
            subprocess.run(
                [*command, f"botocore=={BOTOCORE}", "-d", scratch],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.CalledProcessError as failure:
            output = failure.stderr + failure.stdout
            if any(sign in output for sign in ("NewConnectionError", "Temporary failure", "Network is unreachable")):
                pytest.skip(f"PyPI is unreachable, so AWS's SigV4 test suite cannot be fetched: {output[-300:]}")
            raise
        (archive,) = Path(scratch).glob("botocore-*.tar.gz")
        with tarfile.open(archive) as tar:
            members = [member for member in tar.getmembers() if member.name.startswith(SUITE_PATH + "/")]
            assert members, f"botocore {BOTOCORE}'s sdist has no {SUITE_PATH}"
            tar.extractall(scratch, members=members, filter="data")
        extracted = Path(scratch) / SUITE_PATH
        try:
            extracted.rename(suite)  # atomic: a concurrent run either sees the whole suite or none
        except OSError:
            if not (suite / "get-vanilla" / "get-vanilla.req").exists():
                raise
            shutil.rmtree(extracted, ignore_errors=True)
    return suite


@pytest.fixture(scope="session")
def suite() -> Path:
    return _download_suite(Path(tempfile.gettempdir()) / "htouhui-test-cache" / f"botocore-{BOTOCORE}")


@dataclass
class Vector:
    name: str
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    creq: str
    sts: str
    authz: str


def parse_request(text: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """A .req file: the request line, headers (folded lines joined with a space), a blank line, the body."""
    lines = text.replace("\r\n", "\n").split("\n")
    words = lines[0].split(" ")
    method, target = words[0], " ".join(words[1:-1])
    headers: list[tuple[str, str]] = []
    index = 1
    while index < len(lines) and lines[index] != "":
        line = lines[index]
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
        index += 1
    body = "\n".join(lines[index + 1 :]).encode("utf-8") if index < len(lines) else b""
    return method, target, headers, body


def load(suite: Path, name: str) -> Vector:
    base = suite / name / Path(name).name

    def read(suffix: str) -> str:
        return base.with_suffix(suffix).read_text(encoding="utf-8").replace("\r", "")

    method, target, headers, body = parse_request(read(".req"))
    return Vector(name, method, target, headers, body, read(".creq"), read(".sts"), read(".authz"))


# The suite's vectors (names only; the files come from the sdist). The first test checks this is all of them.
NAMES = [
    *("get-header-key-duplicate", "get-header-value-multiline", "get-header-value-order", "get-header-value-trim"),
    *("get-unreserved", "get-utf8", "get-vanilla", "get-vanilla-empty-query-key", "get-vanilla-query"),
    *("get-vanilla-query-order-encoded", "get-vanilla-query-order-key", "get-vanilla-query-order-key-case"),
    *("get-vanilla-query-order-value", "get-vanilla-query-unreserved", "get-vanilla-utf8-query"),
    "get-vanilla-with-session-token",
    *(f"normalize-path/get-{name}" for name in ("relative", "relative-relative", "slash", "slash-dot-slash")),
    *(f"normalize-path/get-{name}" for name in ("slash-pointless-dot", "slashes", "space", "special-character")),
    *("post-header-key-case", "post-header-key-sort", "post-header-value-case"),
    *("post-sts-token/post-sts-header-after", "post-sts-token/post-sts-header-before"),
    *("post-vanilla", "post-vanilla-empty-query-value", "post-vanilla-query"),
    *("post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters"),
]


def _token_in_creq(vector: Vector) -> str | None:
    for line in vector.creq.split("\n"):
        if line.startswith("x-amz-security-token:"):
            return line.split(":", 1)[1]
    return None


def test_the_names_are_every_vector_of_the_suite(suite: Path) -> None:
    found = sorted(str(path.parent.relative_to(suite)) for path in suite.rglob("*.req"))
    assert found == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_verifier_agrees_with_the_aws_test_suite(suite: Path, name: str) -> None:
    vector = load(suite, name)
    credentials = CREDENTIALS
    headers = list(vector.headers)
    late_token: str | None = None
    token = _token_in_creq(vector)
    if token is not None:
        credentials = sigv4.Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token)
        if not any(key.lower() == "x-amz-security-token" for key, _ in headers):
            headers.append(("X-Amz-Security-Token", token))  # get-vanilla-with-session-token: the signer adds it
    elif name in STS_TOKEN_VECTORS:
        late_token = (suite / "post-sts-token" / "readme.txt").read_text(encoding="utf-8").strip().split()[-1]
        credentials = sigv4.Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, late_token)
    signed = sorted({key.strip().lower() for key, _ in headers})
    amz_date = next(value for key, value in headers if key.lower() == "x-amz-date")
    scope = f"{amz_date[:8]}/{REGION}/{SERVICE}/aws4_request"

    canonical = sigv4.canonical_request(vector.method, vector.target, headers, signed, vector.body)
    assert canonical == vector.creq
    assert sigv4.string_to_sign(amz_date, scope, canonical) == vector.sts
    authorization = sigv4.authorization(
        credentials, vector.method, vector.target, headers, vector.body, region=REGION, service=SERVICE
    )
    assert authorization == vector.authz

    verifier = sigv4.Verifier([credentials], region=REGION, service=SERVICE, clock=lambda: SIGNED_AT)
    sent = [*headers, ("Authorization", vector.authz)]
    if late_token is not None:
        sent.append(("X-Amz-Security-Token", late_token))  # post-sts-header-after: added once signed
    caller = verifier.verify(vector.method, vector.target, sent, vector.body)
    assert caller.access_key == "AKIDEXAMPLE"

    forged = vector.authz[:-1] + ("0" if vector.authz[-1] != "0" else "1")
    altered = [(key, forged if key == "Authorization" else value) for key, value in sent]
    with pytest.raises(sigv4.Refusal) as refused:
        verifier.verify(vector.method, vector.target, altered, vector.body)
    assert refused.value.message.startswith(sigv4.MISMATCH)
