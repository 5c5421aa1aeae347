"""Typed errors of the Usenet engine: one class per kind of reply, carrying code and server text."""

from __future__ import annotations


class NntpError(Exception):
    """Base of everything the engine raises about servers and articles."""

    def __init__(self, message: str, *, code: int | None = None, server: str | None = None):
        super().__init__(message)
        self.code = code
        self.server = server


class ArticleMissing(NntpError):
    """430/423: this server does not have the article."""


class AuthError(NntpError):
    """480/481/482 or a refusal during login: retrying with the same credentials cannot help."""


class TemporaryError(NntpError):
    """4xx other than the above (400 service unavailable, too many connections): retry later."""


class PermanentError(NntpError):
    """5xx: the server refuses the command for good."""


class ProtocolError(NntpError):
    """A reply that breaks the protocol: unexpected codes, garbage, a closed connection."""


class ConnectionLost(NntpError):
    """The connection closed or timed out; requests in flight must be retried elsewhere."""


class SegmentsMissing(NntpError):
    """Bytes a reader waited for cannot be had: their segments are missing on every server."""


def error_for_reply(code: int, text: str, *, server: str | None = None) -> NntpError:
    """Map an unexpected reply to its error class (RFC 3977 3.2, RFC 4643 2.3)."""
    if code in (423, 430):
        return ArticleMissing(text, code=code, server=server)
    if code in (480, 481, 482, 483):
        return AuthError(text, code=code, server=server)
    if 400 <= code < 500:
        return TemporaryError(text, code=code, server=server)
    if 500 <= code < 600:
        return PermanentError(text, code=code, server=server)
    return ProtocolError(f"unexpected reply: {text}", code=code, server=server)
