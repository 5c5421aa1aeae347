"""Signed, expiring tokens in media URLs: a player (<video src>, VLC, ffmpeg) cannot send
an X-Api-Key header, so a stream URL carries proof that an authenticated caller asked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured session secret, else one generated once and kept in the data dir."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48).encode()
        path.touch(mode=0o600)
        path.write_bytes(value)
        return value


def _mac(secret: bytes, scope: str, expires: int) -> str:
    digest = hmac.new(secret, f"{scope}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def sign(secret: bytes, scope: str, expires: int) -> str:
    """A token valid for ``scope`` (e.g. a job id) until ``expires`` (unix seconds)."""
    return f"{expires}.{_mac(secret, scope, expires)}"


def verify(secret: bytes, scope: str, token: str, now: float) -> bool:
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < now:
        return False
    return hmac.compare_digest(mac, _mac(secret, scope, expires))
