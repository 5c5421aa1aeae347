"""The S3 client for R2 (or any S3-compatible store), and what its failures mean.

One aiobotocore client lives as long as the app (opened in the mirror's cleanup context).
It is configured for S3-compatible stores: R2 rejects the CRC32 checksums botocore sends by
default, so checksums only "when required"; region ``auto``; path-style URLs when asked.
botocore's own retries are off: `with_retries` is the one place that retries, with
exponential back-off and full jitter, and only what can succeed when tried again (5xx,
SlowDown, timeouts, resets). Everything else is permanent and becomes a `StorageError` whose
message says what to fix, never a secret.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from server.config.settings import R2Config
from server.errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
_RNG = random.Random()  # noqa: S311 (jitter, not secrets)

#: Tries of one request before it counts as failed, and the back-off between them.
ATTEMPTS = 8
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

#: S3 error codes that may go away when tried again.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationAborted",
        "TooManyRequests",
        "500",
        "502",
        "503",
        "504",
    }
)
#: What a person must fix, by S3 error code.
PERMANENT_HINTS = {
    "InvalidAccessKeyId": "the access key is not known: check [r2] access_key_id",
    "SignatureDoesNotMatch": "the secret does not match the key: check [r2] secret_access_key",
    "AccessDenied": "the token may not do this: give it read and write access to the bucket",
    "NoSuchBucket": "the bucket does not exist: create it, or check [r2] bucket",
    "InvalidBucketName": "the bucket name is not valid: check [r2] bucket",
    # HEAD answers have no body, so only the status says what went wrong
    "403": "the credentials are refused, or may not use this bucket: check [r2]"
    " access_key_id and secret_access_key",
}

Client = Any  # aiobotocore's S3 client is generated at run time: no static type


def config_for(settings: R2Config) -> AioConfig:
    return AioConfig(
        region_name=settings.region,
        signature_version="s3v4",
        s3={
            "addressing_style": "path" if settings.path_style else "virtual",
            # No SHA-256 of each body on the event loop (what botocore does over plain
            # HTTP; over HTTPS it already skips it): each part carries a Content-MD5,
            # made in the reading thread, which the store checks.
            "payload_signing_enabled": False,
        },
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"total_max_attempts": 1, "mode": "standard"},  # ours, in with_retries
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=max(10, settings.concurrency * 2),
    )


async def open_client(settings: R2Config, stack: AsyncExitStack) -> Client:
    """The client, closed when ``stack`` closes."""
    session = get_session()
    return await stack.enter_async_context(
        session.create_client(
            "s3",
            endpoint_url=settings.endpoint,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
            config=config_for(settings),
        )
    )


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError ("NoSuchUpload", "503"...), else ""."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or (str(status) if status else "")
    return ""


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may succeed."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in TRANSIENT_CODES or int(status) >= 500
    return isinstance(
        exc,
        EndpointConnectionError
        | ConnectionClosedError
        | HTTPClientError  # aiobotocore's wrapping of a dropped connection
        | ConnectTimeoutError
        | ReadTimeoutError
        | ResponseStreamingError
        | aiohttp.ClientError
        | ConnectionError
        | TimeoutError,
    )


def describe(exc: BaseException, what: str) -> str:
    """A failure in words a person can act on; no key, secret or signature in it."""
    code = error_code(exc)
    if code in PERMANENT_HINTS:
        return f"R2 refused to {what}: {PERMANENT_HINTS[code]} ({code})"
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"R2 refused to {what}: {code or 'error'} (HTTP {status})"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"cannot reach R2 to {what}: check [r2] endpoint and the network"
    if is_transient(exc):
        return f"R2 did not answer to {what}: {type(exc).__name__}"
    return f"cannot {what} in R2: {type(exc).__name__}"


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: a random wait up to an exponentially growing cap (attempt 1 is the first
    retry), so that many parts failing at once do not retry in step."""
    cap = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1))
    return (rng or _RNG).uniform(0, cap)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    what: str,
    *,
    attempts: int | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """``call()``, tried again after transient failures; a `StorageError` saying what went
    wrong once it fails for good (``permanent`` tells which kind)."""
    tries = attempts or ATTEMPTS
    for attempt in range(1, tries + 1):
        try:
            return await call()
        except (ClientError, BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            if not is_transient(exc) or attempt == tries:
                raise R2Error(describe(exc, what), permanent=not is_transient(exc)) from exc
            wait = backoff(attempt)
            log.info("R2: %s failed (%s); trying again in %.1f s", what, describe(exc, what), wait)
            if on_retry is not None:
                on_retry(exc)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


class R2Error(StorageError):
    """R2 failed; ``permanent`` when trying again will not help (credentials, no bucket)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


async def probe_bucket(client: Client, bucket: str) -> str | None:
    """None when the bucket answers (HEAD), else the problem in words."""
    try:
        await with_retries(
            lambda: client.head_bucket(Bucket=bucket), "reach the bucket", attempts=1
        )
    except StorageError as exc:
        if error_code(exc.__cause__ or exc) == "404":  # a HEAD has no body to say more
            return f"R2: {PERMANENT_HINTS['NoSuchBucket']}"
        return exc.message
    return None
