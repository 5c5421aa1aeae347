"""The household's password: stored as one scrypt string, checked in constant time.

``scrypt$n=16384,r=8,p=1$<salt>$<key>`` (base64 without padding), kept in the store by
``matinee set-password``, the first-run page and the account page
(``server.http.credentials``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

MIN_PASSWORD = 8
#: scrypt takes any length; a bound keeps a hostile form from making it chew megabytes.
MAX_PASSWORD = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_HASH = re.compile(
    r"scrypt\$n=(?P<n>\d{1,8}),r=(?P<r>\d{1,3}),p=(?P<p>\d{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]{16,88})\$(?P<key>[A-Za-z0-9+/]{16,88})"
)
#: A memory bound for hashes found in a config file; the default parameters need 16 MiB.
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL needs about 128 * r * (n + p + 2) bytes; the default limit (32 MiB) is too tight.
    maxmem = 2 * 128 * r * (n + p + 2)
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


@dataclass(frozen=True, slots=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The scrypt string stored as ``[auth] password_hash``; a new random salt each time."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, _KEY_BYTES)
    return f"scrypt$n={n},r={r},p={p}${_b64(salt)}${_b64(key)}"


def parse_password_hash(encoded: str) -> ScryptHash:
    """Raises ValueError, saying what is wrong, for anything but a usable scrypt string."""
    match = _HASH.fullmatch(encoded.strip())
    if match is None:
        raise ValueError("not a scrypt hash written by `matinee set-password`")
    n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError("the scrypt parameters are out of range")
    if 128 * r * n > _MAX_SCRYPT_MEMORY:
        raise ValueError("the scrypt parameters need too much memory")
    try:
        salt, key = _unb64(match["salt"]), _unb64(match["key"])
    except ValueError:
        raise ValueError("the salt or key is not valid base64") from None
    return ScryptHash(n, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; constant time in the comparison. Raises ValueError
    when ``encoded`` is not a valid hash. Takes tens of milliseconds: call it in a thread."""
    stored = parse_password_hash(encoded)
    derived = _scrypt(password, stored.salt, stored.n, stored.r, stored.p, len(stored.key))
    return hmac.compare_digest(derived, stored.key)


PasswordState = Literal["set", "unset", "invalid"]


def hash_state(encoded: str | None) -> PasswordState:
    """Whether a stored password hash is there and usable."""
    if not encoded:
        return "unset"
    try:
        parse_password_hash(encoded)
    except ValueError:
        return "invalid"
    return "set"
