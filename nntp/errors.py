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


def reply_class(code: int) -> type[NntpError] | None:
    """What a reply code means, as the error class it would raise (RFC 3977 3.2, RFC 4643
    2.3); None for success (1xx-3xx). The one classification: the connection and the
    download's pipelined replies both ask it."""
    if 100 <= code < 400:
        return None
    if code in (423, 430):
        return ArticleMissing
    if code in (480, 481, 482, 483):
        return AuthError
    if 400 <= code < 500:
        return TemporaryError
    if 500 <= code < 600:
        return PermanentError
    return ProtocolError


def error_for_reply(code: int, text: str, *, server: str | None = None) -> NntpError:
    """The error an unexpected reply raises."""
    cls = reply_class(code)
    if cls is None or cls is ProtocolError:
        return ProtocolError(f"unexpected reply: {text}", code=code, server=server)
    return cls(text, code=code, server=server)
