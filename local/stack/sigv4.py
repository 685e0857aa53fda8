"""AWS Signature Version 4, checked as API Gateway's IAM authorization checks it (`STACK_IAM=1`).

The canonical request, the string to sign and the signing key follow AWS's "Create a signed AWS API request"
(docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) and its published test suite:

- the canonical URI is the request line's path with dot segments and repeated slashes removed, then URI-encoded
  (every byte but the unreserved `A-Za-z0-9-._~` and `/`): a path sent percent-encoded is thus encoded twice,
  as every service but S3 expects;
- the canonical query has each name and value decoded, then URI-encoded, sorted by name then value; a name
  without `=` gets an empty value;
- each signed header is lower-cased, its values (repeats joined with `,`) trimmed with inner runs of white
  space made one space;
- the payload hash is the SHA-256 of the body as received.

A request must sign `host` and `x-amz-date`, be dated within 5 minutes of the verifier's clock (injected: the
tests never sleep), be scoped to `<date>/<region>/<service>/aws4_request`, and carry the credentials' session
token in `X-Amz-Security-Token` when they have one (signed or added afterwards, as the test suite shows both).
Presigned URLs (the signature in the query string) are not accepted. Refusals are `Refusal`s: API Gateway's
403, its `x-amzn-ErrorType` and its message.
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import os
import re
import secrets
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
MAX_SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
PROFILE = "htouhui-local"
CREDENTIALS_FILE = "iam-credentials"
_SPACES = re.compile(r"\s+")
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None
    name: str = PROFILE  # the IAM user they stand for (locally: the profile's name)


@dataclass(frozen=True)
class Caller:
    """Who signed: what API Gateway puts in requestContext.authorizer.iam (payload 2.0)."""

    access_key: str
    account_id: str
    user_arn: str
    user_id: str

    def as_iam(self) -> dict[str, object]:
        return {
            "accessKey": self.access_key,
            "accountId": self.account_id,
            "callerId": self.user_id,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": self.user_arn,
            "userId": self.user_id,
        }


class Refusal(Exception):
    """A request API Gateway would refuse: 403 with `{"message": ...}` and this `x-amzn-ErrorType`."""

    status = 403

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


MISSING = "Missing Authentication Token"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - a message, not a secret


# -- the canonical request -------------------------------------------------------------------------------------
def uri_encode(text: str) -> str:
    """Every UTF-8 byte but the unreserved characters, percent-encoded in upper case ('/' kept)."""
    return quote(text, safe="/~")


def normalized_path(path: str) -> str:
    """The path without `.` and `..` segments nor empty ones (RFC 3986 5.2.4 and SigV4), its trailing '/' kept."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    joined = "/" + "/".join(segments)
    return joined + "/" if trailing and segments else joined


def canonical_query(raw_query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="~"), quote(unquote(value), safe="~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def header_value(value: str) -> str:
    return _SPACES.sub(" ", value).strip()


def canonical_headers(headers: Iterable[tuple[str, str]], signed: Sequence[str]) -> str:
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.strip().lower(), []).append(header_value(value))
    return "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed)


def canonical_request(
    method: str, target: str, headers: Iterable[tuple[str, str]], signed: Sequence[str], body: bytes
) -> str:
    """The canonical request of `method target` (the request line's, path and query as sent)."""
    path, _, query = target.partition("?")
    return "\n".join(
        [
            method.upper(),
            uri_encode(normalized_path(path)),
            canonical_query(query),
            canonical_headers(headers, signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(secret_key: str, scope: str, to_sign: str) -> str:
    date, region, service, _ = scope.split("/")
    key = signing_key(secret_key, date, region, service)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(
    credentials: Credentials,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    region: str,
    service: str,
    signed: Sequence[str] | None = None,
) -> str:
    """The Authorization header for a request that carries its `X-Amz-Date` (all its headers signed unless
    `signed` names them)."""
    names = sorted({name.strip().lower() for name, _ in headers} if signed is None else set(signed))
    amz_date = next(value.strip() for name, value in headers if name.lower() == "x-amz-date")
    scope = f"{amz_date[:8]}/{region}/{service}/{TERMINATOR}"
    canonical = canonical_request(method, target, headers, names, body)
    value = signature(credentials.secret_key, scope, string_to_sign(amz_date, scope, canonical))
    return (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={value}"
    )


# -- the check -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    access_key: str
    date: str
    region: str
    service: str
    signed: tuple[str, ...]
    signature: str


def _incomplete(message: str) -> Refusal:
    return Refusal("IncompleteSignatureException", message)


def parse_authorization(value: str, amz_date: str | None) -> _Parsed:
    """The Authorization header's parts; API Gateway's IncompleteSignatureException messages when one is
    missing or malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    parameters: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for part in rest.split(","):
            name, equals, content = part.strip().partition("=")
            if equals:
                parameters[name.strip()] = content.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not parameters.get(name)
    ]
    if amz_date is None:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise _incomplete(" ".join([*problems, f"Authorization={value}"]))
    credential = parameters["Credential"].split("/")
    if len(credential) != 5:
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{parameters['Credential']}'"
        )
    access_key, date, region, service, terminator = credential
    if terminator != TERMINATOR:
        raise _incomplete(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'. ")
    signed = tuple(parameters["SignedHeaders"].split(";"))
    if any(name != name.lower() or not name for name in signed) or list(signed) != sorted(set(signed)):
        raise _incomplete(
            "SignedHeaders must be the lower-case header names, sorted and separated by ';', got "
            f"'{parameters['SignedHeaders']}'"
        )
    return _Parsed(access_key, date, region, service, signed, parameters["Signature"])


class Verifier:
    """Checks one request's SigV4 against `credentials` (by access key) for `service` in `region`."""

    def __init__(
        self,
        credentials: Iterable[Credentials],
        *,
        region: str,
        service: str = "execute-api",
        account_id: str = "123456789012",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_skew: timedelta = MAX_SKEW,
    ) -> None:
        self.credentials = {item.access_key: item for item in credentials}
        self.region = region
        self.service = service
        self.account_id = account_id
        self.clock = clock
        self.max_skew = max_skew

    def verify(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> Caller:
        """The caller, or a `Refusal` saying why not (in API Gateway's words)."""

        def header(name: str) -> str | None:
            values = [value for key, value in headers if key.strip().lower() == name]
            return ",".join(values) if values else None

        value = header("authorization")
        if not value:
            raise Refusal("MissingAuthenticationTokenException", MISSING)
        amz_date = header("x-amz-date")
        parsed = parse_authorization(value, amz_date.strip() if amz_date is not None else None)
        assert amz_date is not None
        amz_date = amz_date.strip()
        if "host" not in parsed.signed:
            raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        if "x-amz-date" not in parsed.signed:
            raise _incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
        if not _AMZ_DATE.match(amz_date):
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            )
        try:
            when = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ) from None
        if parsed.date != amz_date[:8]:
            raise Refusal(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{parsed.date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )
        if parsed.region != self.region:
            raise Refusal("InvalidSignatureException", "Credential should be scoped to a valid region. ")
        if parsed.service != self.service:
            raise Refusal(
                "InvalidSignatureException", f"Credential should be scoped to correct service: '{self.service}'. "
            )
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        if when < now - self.max_skew:
            raise Refusal(
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than {(now - self.max_skew).strftime(AMZ_DATE)} "
                f"({now.strftime(AMZ_DATE)} - {_minutes(self.max_skew)} min.)",
            )
        if when > now + self.max_skew:
            raise Refusal(
                "InvalidSignatureException",
                f"Signature not yet current: {amz_date} is still later than "
                f"{(now + self.max_skew).strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} + {_minutes(self.max_skew)} "
                "min.)",
            )
        credentials = self.credentials.get(parsed.access_key)
        if credentials is None:
            raise Refusal("UnrecognizedClientException", INVALID_TOKEN)
        token = header("x-amz-security-token")
        expected_token = credentials.session_token or None
        if (token.strip() if token is not None else None) != expected_token:
            raise Refusal("UnrecognizedClientException", INVALID_TOKEN)
        scope = f"{parsed.date}/{parsed.region}/{parsed.service}/{TERMINATOR}"
        canonical = canonical_request(method, _utf8(target), headers, parsed.signed, body)
        to_sign = string_to_sign(amz_date, scope, canonical)
        if not hmac.compare_digest(signature(credentials.secret_key, scope, to_sign), parsed.signature):
            raise Refusal(
                "InvalidSignatureException",
                f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
                f"The String-to-Sign should have been\n'{to_sign}'\n",
            )
        user_id = "AIDA" + hashlib.sha256(credentials.access_key.encode()).hexdigest()[:17].upper()
        return Caller(
            access_key=credentials.access_key,
            account_id=self.account_id,
            user_arn=f"arn:aws:iam::{self.account_id}:user/{credentials.name}",
            user_id=user_id,
        )


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g}"


def _utf8(target: str) -> str:
    """The request line as the stdlib gives it (bytes read as Latin-1) back to text as sent (UTF-8)."""
    try:
        return target.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return target


# -- the local credentials -------------------------------------------------------------------------------------
_KEY_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def new_credentials(name: str = PROFILE) -> Credentials:
    """Random credentials shaped like an IAM user's (AKIA + 16, and a 40-character secret)."""
    return Credentials(
        access_key="AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
        secret_key="".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
        name=name,
    )


def read_credentials(path: Path) -> list[Credentials]:
    """Every profile of an AWS shared-credentials file with a key and a secret."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    found = []
    for name in parser.sections():
        section = parser[name]
        if section.get("aws_access_key_id") and section.get("aws_secret_access_key"):
            found.append(
                Credentials(
                    access_key=section["aws_access_key_id"].strip(),
                    secret_key=section["aws_secret_access_key"].strip(),
                    session_token=(section.get("aws_session_token") or "").strip() or None,
                    name=name,
                )
            )
    return found


def ensure_credentials(folder: Path) -> tuple[Path, list[Credentials], bool]:
    """`folder/iam-credentials` (0600, profile `htouhui-local`), made on the first call and reused after; its
    credentials, and whether it was created now."""
    path = folder / CREDENTIALS_FILE
    created = False
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        made = new_credentials()
        text = f"[{PROFILE}]\naws_access_key_id = {made.access_key}\naws_secret_access_key = {made.secret_key}\n"
        descriptor = _create_private(path)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        created = True
    found = read_credentials(path)
    if not found:
        raise ValueError(f"{path}: no profile with aws_access_key_id and aws_secret_access_key")
    return path, found, created


def _create_private(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
