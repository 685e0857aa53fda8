"""The Htouhui wire protocol (PROTOCOL.md §2-§3, §8, §9), in one place.

Canonical string, signatures, key loading, the common fields and the form parser. Every choice the seed
leaves open is a knob of a `Profile` (§8): field names, hash, what the canonical string holds, timestamp
format, encoding, success code, acknowledgement. The client, the models, the notify handler, the page
builder and the sandbox take all of them from here, so a merchant whose document differs writes a
profile file, not code. Inside the layer, messages use the default profile's names (`internal`).

One module over the ~500-line guide on purpose: the canonical string, the profile that shapes it and the
signature over it are read together when a vector fails; split, each would send the reader to the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

logger = logging.getLogger(__name__)

VERSION: Final = "1.0"
SIGN_FIELD: Final = "sign"
SIGN_TYPE_FIELD: Final = "sign_type"
TIMESTAMP_FIELD: Final = "timestamp"
VERSION_FIELD: Final = "version"
# The names and success code the layer uses inside (the default profile's); `Profile.internal` maps to them.
PARTNER_FIELD: Final = "partner_id"
REQUEST_FIELD: Final = "request_no"
SUCCESS: Final = "0000"
MIN_KEY_BITS: Final = 2048
CHINA_STANDARD_TIME: Final = timezone(timedelta(hours=8), "CST")
REQUEST_NO_MAX: Final = 32
REQUEST_NO_PATTERN: Final = re.compile(r"^[0-9A-Za-z_-]{1,32}$")

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey
Fields = Mapping[str, str | None]
_K = TypeVar("_K", rsa.RSAPrivateKey, rsa.RSAPublicKey)


class KeyFormatError(ValueError):
    """A key could not be loaded; the message says which form was expected."""


class MalformedMessage(ValueError):
    """A form body or query string that is not a well-formed set of unique fields (§9).

    `rule` names what broke and `field` where (a field's name, or "body"), never a value: both are safe to log.
    """

    def __init__(self, rule: str, field: str = "body") -> None:
        super().__init__(f"malformed message: {rule} ({field})")
        self.rule = rule
        self.field = field


# --- profiles (§8): the assumptions of §2-§6 as data ------------------------------------------------

KNOBS: Final = (
    "sign_type",
    "hash",
    "sign_type_in_canonical",
    "empty_values",
    "timestamp_format",
    "partner_field",
    "request_field",
    "request_encoding",
    "success_code",
    "ack",
)
_HASHES: Final = {"SHA256": hashes.SHA256, "SHA1": hashes.SHA1}
_TIMESTAMP_TOKENS: Final = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_TIMESTAMP_PATTERN: Final = re.compile(r"yyyy|MM|dd|HH|mm|ss|[-/:. T]")
_FIELD_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the knob (or the file) and what it must be."""


@dataclass(frozen=True)
class Profile:
    """One variant of the wire protocol: the ten knobs of PROTOCOL.md §8, checked when built."""

    name: str
    sign_type: str
    hash: Literal["SHA256", "SHA1"]
    sign_type_in_canonical: bool
    empty_values: Literal["drop", "keep"]
    timestamp_format: str
    partner_field: str
    request_field: str
    request_encoding: Literal["json", "form"]
    success_code: str
    ack: str
    _strftime: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _profile_problems(self)
        if problems:
            raise ProfileError(f"profile {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "_strftime", _strftime_of(self.timestamp_format))

    @classmethod
    def from_json(cls, data: Any, name: str) -> Profile:
        """A profile from its JSON object (the ten keys, nothing else); ProfileError names what is wrong."""
        if not isinstance(data, dict):
            raise ProfileError(f"profile {name!r}: must be a JSON object with the keys {', '.join(KNOBS)}")
        missing = [knob for knob in KNOBS if knob not in data]
        unknown = sorted(set(data) - set(KNOBS))
        if missing or unknown:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else []
            )
            raise ProfileError(f"profile {name!r}: " + "; ".join(parts))
        return cls(name=name, **data)

    def to_json(self) -> dict[str, Any]:
        return {knob: getattr(self, knob) for knob in KNOBS}

    # -- the canonical string's rules ------------------------------------------------------------------

    @property
    def unsigned_fields(self) -> frozenset[str]:
        return frozenset({SIGN_FIELD} if self.sign_type_in_canonical else {SIGN_FIELD, SIGN_TYPE_FIELD})

    def keeps(self, value: str | None) -> bool:
        """Whether a value goes into the canonical string: never a missing or null one; "" per the profile."""
        return value is not None and (value != "" or self.empty_values == "keep")

    # -- timestamps (always China Standard Time) --------------------------------------------------------

    def timestamp(self, now: datetime | None = None) -> str:
        moment = now if now is not None else datetime.now(UTC)
        if moment.tzinfo is None:
            raise ValueError("a naive datetime has no zone; pass an aware one")
        return moment.astimezone(CHINA_STANDARD_TIME).strftime(self._strftime)

    def parse_timestamp(self, value: str) -> datetime:
        """The aware datetime of a timestamp in this profile's format; ValueError if it is not one."""
        if len(value) != len(self.timestamp(datetime(2000, 1, 1, tzinfo=UTC))):
            raise ValueError(f"timestamp must be {self.timestamp_format}")
        try:
            return datetime.strptime(value, self._strftime).replace(tzinfo=CHINA_STANDARD_TIME)
        except ValueError:
            raise ValueError(f"timestamp must be {self.timestamp_format}") from None

    # -- names and codes, between the wire and the layer -------------------------------------------------

    def internal(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A received message with the layer's names (partner_id, request_no) and success code (0000)."""
        renamed = {self.partner_field: PARTNER_FIELD, self.request_field: REQUEST_FIELD}
        shadowed = {PARTNER_FIELD, REQUEST_FIELD} - set(renamed)  # a stray `partner_id` is an unknown field here
        message = {renamed.get(name, name): value for name, value in fields.items() if name not in shadowed}
        if message.get("code") == self.success_code:
            message["code"] = SUCCESS
        return message

    def external(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A message of the layer's names as this profile sends it (the sandbox's answers)."""
        renamed = {PARTNER_FIELD: self.partner_field, REQUEST_FIELD: self.request_field}
        message = {renamed.get(name, name): value for name, value in fields.items()}
        if message.get("code") == SUCCESS:
            message["code"] = self.success_code
        return message

    def is_result_code(self, code: str) -> bool:
        """A code of §5 (four digits) or this profile's success code."""
        return code == self.success_code or (len(code) == 4 and code.isascii() and code.isdigit())


def _profile_problems(profile: Profile) -> list[str]:
    problems = []
    if not (isinstance(profile.sign_type, str) and 0 < len(profile.sign_type) <= 10):
        problems.append("sign_type must be 1 to 10 characters")
    if profile.hash not in _HASHES:
        problems.append(f"hash must be one of {', '.join(_HASHES)}")
    if not isinstance(profile.sign_type_in_canonical, bool):
        problems.append("sign_type_in_canonical must be true or false")
    if profile.empty_values not in ("drop", "keep"):
        problems.append("empty_values must be drop or keep")
    if not isinstance(profile.timestamp_format, str) or _strftime_of(profile.timestamp_format) is None:
        problems.append("timestamp_format must use yyyy MM dd HH mm ss once each, with - / : . T or spaces between")
    for knob in ("partner_field", "request_field"):
        value = getattr(profile, knob)
        if not (isinstance(value, str) and _FIELD_NAME.fullmatch(value)) or value in (SIGN_FIELD, SIGN_TYPE_FIELD):
            problems.append(f"{knob} must be a field name (letters, digits, _), not sign or sign_type")
    if profile.partner_field == profile.request_field:
        problems.append("partner_field and request_field must differ")
    if profile.request_encoding not in ("json", "form"):
        problems.append("request_encoding must be json or form")
    if not (
        isinstance(profile.success_code, str) and profile.success_code.isascii() and profile.success_code.isdigit()
    ):
        problems.append("success_code must be digits")
    if not (
        isinstance(profile.ack, str) and profile.ack.isascii() and profile.ack.isprintable() and profile.ack.strip()
    ):
        problems.append("ack must be printable ASCII text")
    return problems


def _strftime_of(pattern: str) -> Any:
    """The strftime format of a Java-style pattern, or None if it is not one we can read back exactly."""
    if not isinstance(pattern, str):
        return None
    tokens = _TIMESTAMP_PATTERN.findall(pattern)
    if "".join(tokens) != pattern or sorted(t for t in tokens if t in _TIMESTAMP_TOKENS) != sorted(_TIMESTAMP_TOKENS):
        return None
    return "".join(_TIMESTAMP_TOKENS.get(token, token) for token in tokens)


DEFAULT: Final = Profile(
    name="default",
    sign_type="RSA2",
    hash="SHA256",
    sign_type_in_canonical=True,
    empty_values="drop",
    timestamp_format="yyyyMMddHHmmss",
    partner_field=PARTNER_FIELD,
    request_field=REQUEST_FIELD,
    request_encoding="json",
    success_code=SUCCESS,
    ack="SUCCESS",
)
BUILT_IN: Final[dict[str, Profile]] = {
    profile.name: profile
    for profile in (
        DEFAULT,
        Profile(
            name="alipay-style",
            sign_type="RSA2",
            hash="SHA256",
            sign_type_in_canonical=False,
            empty_values="drop",
            timestamp_format="yyyy-MM-dd HH:mm:ss",
            partner_field="app_id",
            request_field="out_request_no",
            request_encoding="form",
            success_code="10000",
            ack="success",
        ),
        Profile(
            name="legacy-sha1",
            sign_type="RSA",
            hash="SHA1",
            sign_type_in_canonical=True,
            empty_values="keep",
            timestamp_format="yyyyMMddHHmmss",
            partner_field="merchant_no",
            request_field="serial_no",
            request_encoding="json",
            success_code=SUCCESS,
            ack="SUCCESS",
        ),
    )
}


def profile_from_text(text: str, name: str) -> Profile:
    """A profile from the text of its JSON file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {name!r}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return Profile.from_json(data, name)


def load_profile(reference: str) -> Profile:
    """A built-in profile by name, or a profile JSON file by `file:PATH` or a plain path (the command line)."""
    if reference in BUILT_IN:
        return BUILT_IN[reference]
    path = Path(reference.removeprefix("file:"))
    if reference.startswith("file:") or path.suffix == ".json" or "/" in reference:
        try:
            return profile_from_text(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ProfileError(f"profile file {path}: cannot be read ({type(exc).__name__})") from None
    raise ProfileError(f"unknown profile {reference!r}: one of {', '.join(BUILT_IN)}, or file:PATH to a JSON file")


# --- canonical string and signature (§3) -------------------------------------------------------


def canonical(fields: Fields, profile: Profile = DEFAULT) -> str:
    """Every field but `sign` (and `sign_type` where the profile says so), missing and null ones dropped,
    empty ones per the profile, sorted by name, joined raw as name=value&..."""
    unsigned = profile.unsigned_fields
    keep_empty = profile.empty_values == "keep"
    # Names are unique, so the pairs sort by name alone (a list joins faster than a generator: verify's hot path).
    return "&".join(
        [
            f"{name}={value}"
            for name, value in sorted(fields.items())
            if value is not None and (keep_empty or value != "") and name not in unsigned
        ]
    )


# What canonical() joins with: a signed value holding one could be regrouped into other fields, same signature.
CANONICAL_SEPARATORS: Final = ("&", "=")


def ambiguous_fields(fields: Fields, profile: Profile = DEFAULT) -> list[str]:
    """The names of the signed fields whose value holds a separator of the canonical string, sorted.

    We never sign such a value (the caller gets a 400 naming the field); one that Htouhui signed is accepted
    when it verifies (§9), and counted."""
    unsigned = profile.unsigned_fields
    return sorted(
        name
        for name, value in fields.items()
        if name not in unsigned and value and any(separator in value for separator in CANONICAL_SEPARATORS)
    )


def sign(fields: Fields, private_key: PrivateKey, profile: Profile = DEFAULT) -> str:
    """Base64 of RSASSA-PKCS1-v1_5 with the profile's hash over the canonical string's UTF-8 bytes."""
    data = canonical(fields, profile).encode("utf-8")
    signature = private_key.sign(data, padding.PKCS1v15(), _HASHES[profile.hash]())
    return base64.b64encode(signature).decode("ascii")


def signed(fields: Fields, private_key: PrivateKey, profile: Profile = DEFAULT) -> dict[str, str]:
    """The fields with `sign_type` and `sign` set, ready to send: what the canonical string leaves out is not sent."""
    message = {
        name: value
        for name, value in fields.items()
        if value is not None and profile.keeps(value) and name != SIGN_FIELD
    }
    message[SIGN_TYPE_FIELD] = profile.sign_type
    message[SIGN_FIELD] = sign(message, private_key, profile)
    return message


def verify(fields: Fields, public_keys: PublicKey | Iterable[PublicKey], profile: Profile = DEFAULT) -> bool:
    """True when `sign` is a valid signature under any of the keys (two during a rotation)."""
    return verification_failure(fields, public_keys, profile) is None


def verification_failure(
    fields: Fields, public_keys: PublicKey | Iterable[PublicKey], profile: Profile = DEFAULT
) -> str | None:
    """None when `sign` verifies under any of the keys, else the rule that failed ("no key matches", ...).

    Never raises: an unknown `sign_type`, a missing `sign` or bad base64 is a failure like any other. A failure
    is logged with the SHA-256 of the canonical string and the keys' fingerprints, never a value.
    """
    # A tuple or list first: an isinstance check against the RSAPublicKey ABC costs more than the rest here.
    if isinstance(public_keys, tuple | list):
        keys = list(public_keys)
    elif isinstance(public_keys, rsa.RSAPublicKey):
        keys = [public_keys]
    else:
        keys = list(public_keys)
    try:
        text = canonical(fields, profile)
    except TypeError:  # names that cannot be sorted together: not a message anyone signed
        text = ""
        reason: str | None = "fields are not text"
    else:
        reason = _verification_failure(fields, keys, text, profile)
    if reason is None:
        return None
    logger.warning(
        "htouhui signature verification failed",
        extra={
            "reason": reason,
            # surrogatepass: a lone surrogate from JSON must not turn a failed check into an exception.
            "canonical_sha256": hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest(),
            "key_fingerprints": [fingerprint(key) for key in keys if isinstance(key, rsa.RSAPublicKey)],
        },
    )
    return reason


def _verification_failure(fields: Fields, keys: list[PublicKey], text: str, profile: Profile) -> str | None:
    # The configured profile's hash only: a sender's sign_type never chooses it (no downgrade to SHA-1).
    if fields.get(SIGN_TYPE_FIELD) != profile.sign_type:
        return "unknown sign_type"
    encoded = fields.get(SIGN_FIELD)
    if not encoded:
        return "missing sign"
    if not isinstance(encoded, str):
        return "sign is not text"
    try:
        signature = binascii.a2b_base64(encoded, strict_mode=True)  # b64decode(validate=True), without its regex
    except (binascii.Error, ValueError):
        return "sign is not base64"
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800"): nobody can have signed it
        return "fields are not valid Unicode"
    algorithm = _HASHES[profile.hash]()
    for key in keys:
        try:
            key.verify(signature, message, padding.PKCS1v15(), algorithm)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return None
    return "no key matches" if keys else "no key configured"


def fingerprint(key: PublicKey | PrivateKey) -> str:
    """SHA-256 of the public key's DER SubjectPublicKeyInfo, hex: safe to log and to compare."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# --- reading what Htouhui sends (§9) -------------------------------------------------------------------

_PERCENT_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def parse_form(text: str) -> dict[str, str]:
    """The fields of an `application/x-www-form-urlencoded` text, read as WHATWG's parser does (§9).

    Empty sequences (`&&`, a trailing `&`) are skipped, `name=` is a field with an empty value, `+` is a
    space, a trailing CR/LF is ignored. Stricter than WHATWG where guessing would be unsafe: bad UTF-8, a bad
    percent-escape, an empty name or a name given twice raises MalformedMessage (which one was signed?).
    """
    fields: dict[str, str] = {}
    for sequence in text.rstrip("\r\n").split("&"):
        if not sequence:
            continue
        raw_name, _, raw_value = sequence.partition("=")
        name = _form_decode(raw_name, "name")
        if not name:
            raise MalformedMessage("empty_name")
        if name in fields:
            raise MalformedMessage("repeated_name", loggable_name(name))
        fields[name] = _form_decode(raw_value, loggable_name(name))
    return fields


def _form_decode(text: str, field: str) -> str:
    data = text.replace("+", " ").encode("utf-8", errors="surrogatepass")
    if _PERCENT_ESCAPE.search(data):
        raise MalformedMessage("bad_percent_escape", field)
    try:
        return urllib.parse.unquote_to_bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("bad_utf8", field) from None


def loggable_name(name: str) -> str:
    """A field's name as a log may show it: names are not personal data, but a forged one may be anything."""
    return name if re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", name) else "unnamed"


def present(fields: Mapping[str, object]) -> dict[str, object]:
    """The fields that are there: an empty value, a JSON null and a missing field mean the same (§9)."""
    return {name: value for name, value in fields.items() if value is not None and value != ""}


# --- keys -------------------------------------------------------------------------------------


_KEY_CHECK: Final = b"htouhui private key check"


def load_private_key(data: str | bytes) -> PrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or the bare base64 of its DER.

    cryptography's own check of the RSA parameters costs about 30 ms per load (a cold start's first signature);
    the key is our own, from our secret store, so one signature verified with its public half stands in for
    it (about 1.5 ms): inconsistent parameters fail that check as they fail cryptography's.
    """
    pem, der = _pem_or_der(data)
    try:
        key = (
            serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
            if pem
            else serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError("not an RSA private key in PEM (PKCS#8/PKCS#1) or base64 DER form") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("the private key is not an RSA key")
    key = _long_enough(key, "private")
    try:
        signature = key.sign(_KEY_CHECK, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(signature, _KEY_CHECK, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise KeyFormatError("the private key's RSA parameters are inconsistent") from exc
    return key


def load_public_key(data: str | bytes) -> PublicKey:
    """An RSA public key from PEM (SPKI or PKCS#1) or the bare base64 of its DER."""
    pem, der = _pem_or_der(data)
    try:
        key = serialization.load_pem_public_key(pem) if pem else _load_der_public(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError("not an RSA public key in PEM (SPKI/PKCS#1) or base64 DER form") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError("the public key is not an RSA key")
    return _long_enough(key, "public")


def _load_der_public(der: bytes) -> object:
    try:
        return serialization.load_der_public_key(der)
    except ValueError:
        # A bare PKCS#1 RSAPublicKey body: give it its PEM armour and let the PEM loader decide.
        body = base64.encodebytes(der)
        return serialization.load_pem_public_key(
            b"-----BEGIN RSA PUBLIC KEY-----\n" + body + b"-----END RSA PUBLIC KEY-----\n"
        )


def _pem_or_der(data: str | bytes) -> tuple[bytes, bytes]:
    text = data.decode("ascii", errors="replace") if isinstance(data, bytes) else data
    # Keys travel through environment variables and consoles: undo escaped and Windows line ends.
    text = text.replace("\\n", "\n").replace("\r\n", "\n").replace("\r", "\n").strip()
    if text.startswith("-----BEGIN"):
        return text.encode("ascii", errors="replace") + b"\n", b""
    try:
        return b"", base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("key is neither PEM nor base64 DER") from exc


def _long_enough(key: _K, label: str) -> _K:
    if key.key_size < MIN_KEY_BITS:
        raise KeyFormatError(f"the {label} key has {key.key_size} bits; at least {MIN_KEY_BITS} are required")
    return key


def generate_private_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=MIN_KEY_BITS)


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: PublicKey | PrivateKey) -> bytes:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- common fields (§2) -------------------------------------------------------------------------


def china_timestamp(now: datetime | None = None) -> str:
    """The default profile's `yyyyMMddHHmmss` in China Standard Time, whatever the machine's zone."""
    return DEFAULT.timestamp(now)


def parse_china_timestamp(value: str) -> datetime:
    """The aware datetime of a default-profile timestamp; ValueError if malformed."""
    return DEFAULT.parse_timestamp(value)


def new_request_no(prefix: str = "") -> str:
    """A fresh `request_no`: prefix, CST second, 80 random bits; at most 32 of `[0-9A-Za-z_-]`."""
    if not re.fullmatch(r"[0-9A-Za-z_-]{0,8}", prefix):
        raise ValueError("request_no prefix: at most 8 of [0-9A-Za-z_-]")
    value = f"{prefix}{DEFAULT.timestamp()}{secrets.token_hex(5)}"
    if not REQUEST_NO_PATTERN.fullmatch(value):  # the prefix check above makes this unreachable; kept as a guard
        raise ValueError("request_no would break its rule")
    return value


def request_common_fields(
    partner_id: str, *, profile: Profile = DEFAULT, request_no: str | None = None, now: datetime | None = None
) -> dict[str, str]:
    """The common request fields except `sign` (PROTOCOL.md §2), named and formatted as the profile says."""
    number = request_no if request_no is not None else new_request_no()
    if not REQUEST_NO_PATTERN.fullmatch(number):
        raise ValueError("request_no must be 1 to 32 of [0-9A-Za-z_-]")
    return {
        profile.partner_field: partner_id,
        profile.request_field: number,
        TIMESTAMP_FIELD: profile.timestamp(now),
        VERSION_FIELD: VERSION,
        SIGN_TYPE_FIELD: profile.sign_type,
    }
