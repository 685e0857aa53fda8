"""The Htouhui wire protocol (PROTOCOL.md §2-§3), in one place.

Canonical string, RSA2 signatures, key loading and the common fields. The Lambda layer's client
and the local sandbox both speak through this module, so a merchant who receives a different
common-field section from Htouhui changes this file and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

logger = logging.getLogger(__name__)

VERSION: Final = "1.0"
SIGN_TYPE: Final = "RSA2"
SIGN_FIELD: Final = "sign"
MIN_KEY_BITS: Final = 2048
CHINA_STANDARD_TIME: Final = timezone(timedelta(hours=8), "CST")
TIMESTAMP_FORMAT: Final = "%Y%m%d%H%M%S"
REQUEST_NO_MAX: Final = 32
REQUEST_NO_PATTERN: Final = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
SUCCESS: Final = "0000"

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


# --- canonical string and signature (§3) -------------------------------------------------------


def canonical(fields: Fields) -> str:
    """Every field but `sign`, empty ones dropped, sorted by name, joined raw as name=value&..."""
    # Names are unique, so the pairs sort by name alone (a list joins faster than a generator: verify's hot path).
    return "&".join(
        [
            f"{name}={value}"
            for name, value in sorted(fields.items())
            if value is not None and value != "" and name != SIGN_FIELD
        ]
    )


def sign(fields: Fields, private_key: PrivateKey) -> str:
    """Base64 of SHA256withRSA (PKCS#1 v1.5) over the canonical string's UTF-8 bytes."""
    signature = private_key.sign(canonical(fields).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def signed(fields: Fields, private_key: PrivateKey) -> dict[str, str]:
    """The fields with `sign_type` and `sign` set, empty values dropped: ready to send."""
    message = {name: value for name, value in fields.items() if value not in (None, "") and name != SIGN_FIELD}
    message["sign_type"] = SIGN_TYPE
    message[SIGN_FIELD] = sign(message, private_key)
    return message


def verify(fields: Fields, public_keys: PublicKey | Iterable[PublicKey]) -> bool:
    """True when `sign` is a valid RSA2 signature under any of the keys (two during a rotation)."""
    return verification_failure(fields, public_keys) is None


def verification_failure(fields: Fields, public_keys: PublicKey | Iterable[PublicKey]) -> str | None:
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
        text = canonical(fields)
    except TypeError:  # names that cannot be sorted together: not a message anyone signed
        text = ""
        reason: str | None = "fields are not text"
    else:
        reason = _verification_failure(fields, keys, text)
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


def _verification_failure(fields: Fields, keys: list[PublicKey], text: str) -> str | None:
    if fields.get("sign_type") != SIGN_TYPE:
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
    for key in keys:
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
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
            raise MalformedMessage("repeated_name", _loggable_name(name))
        fields[name] = _form_decode(raw_value, _loggable_name(name))
    return fields


def _form_decode(text: str, field: str) -> str:
    data = text.replace("+", " ").encode("utf-8", errors="surrogatepass")
    if _PERCENT_ESCAPE.search(data):
        raise MalformedMessage("bad_percent_escape", field)
    try:
        return urllib.parse.unquote_to_bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("bad_utf8", field) from None


def _loggable_name(name: str) -> str:
    """A field's name as a log may show it: names are not personal data, but a forged one may be anything."""
    return name if re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", name) else "unnamed"


def present(fields: Mapping[str, object]) -> dict[str, object]:
    """The fields that are there: an empty value, a JSON null and a missing field mean the same (§9)."""
    return {name: value for name, value in fields.items() if value is not None and value != ""}


# --- keys -------------------------------------------------------------------------------------


def load_private_key(data: str | bytes) -> PrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or the bare base64 of its DER."""
    pem, der = _pem_or_der(data)
    try:
        key = (
            serialization.load_pem_private_key(pem, password=None)
            if pem
            else serialization.load_der_private_key(der, password=None)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError("not an RSA private key in PEM (PKCS#8/PKCS#1) or base64 DER form") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("the private key is not an RSA key")
    return _long_enough(key, "private")


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
    """`yyyyMMddHHmmss` in China Standard Time, whatever the machine's zone (Lambda runs in UTC)."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no zone; pass an aware one")
    return moment.astimezone(CHINA_STANDARD_TIME).strftime(TIMESTAMP_FORMAT)


def parse_china_timestamp(value: str) -> datetime:
    """The aware datetime of a `yyyyMMddHHmmss` China Standard Time stamp; ValueError if malformed."""
    if not re.fullmatch(r"\d{14}", value):
        raise ValueError("timestamp must be 14 digits, yyyyMMddHHmmss")
    return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=CHINA_STANDARD_TIME)


def new_request_no(prefix: str = "") -> str:
    """A fresh `request_no`: prefix, CST second, 80 random bits; at most 32 of `[0-9A-Za-z_-]`."""
    if not re.fullmatch(r"[0-9A-Za-z_-]{0,8}", prefix):
        raise ValueError("request_no prefix: at most 8 of [0-9A-Za-z_-]")
    value = f"{prefix}{china_timestamp()}{secrets.token_hex(5)}"
    assert REQUEST_NO_PATTERN.fullmatch(value)
    return value


def request_common_fields(
    partner_id: str, *, request_no: str | None = None, now: datetime | None = None
) -> dict[str, str]:
    """The common request fields except `sign` (PROTOCOL.md §2)."""
    number = request_no if request_no is not None else new_request_no()
    if not REQUEST_NO_PATTERN.fullmatch(number):
        raise ValueError("request_no must be 1 to 32 of [0-9A-Za-z_-]")
    return {
        "partner_id": partner_id,
        "request_no": number,
        "timestamp": china_timestamp(now),
        "version": VERSION,
        "sign_type": SIGN_TYPE,
    }
