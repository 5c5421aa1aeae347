"""The TMDB client: movie lists, details with credits, and poster images, cached in SQLite.

`TmdbClient` turns TMDB's v3 JSON into the JSON API's shapes (`MoviePage`, `MovieDetails`,
handed out as plain dicts ready for ``json_response``) and translates every failure, once, into
our own errors: TMDB's 404 becomes `NotFound`, everything else that goes wrong on TMDB's side
(wrong key, rate limit, 5xx, timeouts, garbage) becomes `TmdbError` (502) with a message a
person can act on. Input that can never succeed (an empty
query, a page beyond 500, an id that is not a positive integer) is refused before any request
with `InvalidInput`.

Authentication: the v4 read access token goes in ``Authorization: Bearer``; without one, the v3
key goes in the ``api_key`` query parameter. Neither ever reaches an exception message, a log
line or a cache key: cache keys are built from the path and the other parameters only, and any
text that could echo the request URL (aiohttp's exceptions, TMDB's own messages) is scrubbed.

Caching: successful replies are stored already parsed (small, and the same for every caller)
through the store's cache table — lists for an hour, details for a day. Errors are never
cached, so a fixed key or a recovered TMDB is seen on the next request.

The shapes, input checks and parsing are ``server.discovery.tmdb_shapes`` (pure).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from server.config.settings import TmdbConfig
from server.discovery.replies import read_capped, retry_after
from server.discovery.tmdb_shapes import (
    check_image,
    check_movie_id,
    check_page,
    check_query,
    parse_movie_details,
    parse_movie_page,
    tmdb_message,
)
from server.errors import NotFound, TmdbError, TmdbUnreachable
from server.logs import MASK
from server.store.db import Store

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


LIST_TTL = 3600.0
DETAILS_TTL = 86400.0

#: 429s retried before giving up (so at most three requests in all).
MAX_RETRIES = 2
#: A longer wait would hold a person's page load hostage; better to fail and let them retry.
MAX_RETRY_AFTER = 10.0
#: When a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER = 1.0
DEFAULT_TIMEOUT = 15.0
MAX_REDIRECTS = 3


#: Details with credits are ~100 KB for a big film; the cap only stops a runaway reply.
MAX_JSON_BYTES = 8 * 1024 * 1024
#: "original" backdrops run to a few MB.
MAX_IMAGE_BYTES = 20 * 1024 * 1024

#: Bump when the cached shapes change, so a new Matinee never reads an old shape.
_CACHE_PREFIX = "tmdb:v1:"


def retry_after_seconds(value: str | None, now: float) -> float:
    """Seconds to wait from a Retry-After header, capped; a default when it says nothing."""
    seconds = retry_after(value, now)
    return DEFAULT_RETRY_AFTER if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class _Reply:
    """What came back, read in full; ``content_type`` without parameters such as charset."""

    status: int
    body: bytes
    content_type: str


class TmdbClient:
    """TMDB over the app's aiohttp session; every method returns JSON-ready dicts.

    ``clock`` dates cache entries and HTTP-date Retry-After values; ``sleep`` waits out a 429.
    Both are injectable so that tests need not wait.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: TmdbConfig,
        store: Store,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._config = config
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._secrets = tuple(s for s in (config.token, config.api_key) if s)

    @property
    def configured(self) -> bool:
        """Whether there is a token or an API key to ask TMDB with."""
        return bool(self._config.token or self._config.api_key)

    # -- the API ---------------------------------------------------------------------
    async def search(self, query: str, page: int = 1) -> dict[str, Any]:
        text, number = check_query(query), check_page(page)
        params = {"query": text, "page": str(number), "include_adult": "false"}
        return await self._list("/search/movie", params)

    async def popular(self, page: int = 1) -> dict[str, Any]:
        return await self._list("/movie/popular", {"page": str(check_page(page))})

    async def top_rated(self, page: int = 1) -> dict[str, Any]:
        return await self._list("/movie/top_rated", {"page": str(check_page(page))})

    async def similar(self, movie_id: int, page: int = 1) -> dict[str, Any]:
        movie_id, number = check_movie_id(movie_id), check_page(page)
        return await self._list(
            f"/movie/{movie_id}/similar", {"page": str(number)}, movie_id=movie_id
        )

    async def movie(self, movie_id: int) -> dict[str, Any]:
        """`MovieDetails`, credits included, in one request (``append_to_response=credits``)."""
        movie_id = check_movie_id(movie_id)
        return await self._cached(
            f"/movie/{movie_id}",
            {"append_to_response": "credits"},
            DETAILS_TTL,
            parse_movie_details,
            movie_id=movie_id,
        )

    async def image(self, size: str, path: str) -> tuple[bytes, str]:
        """A poster, backdrop, profile or logo: (content, content type). Not cached here.

        No credentials are sent: the image CDN needs none, and it is another host.
        """
        check_image(size, path)
        url = f"{self._config.image_base_url}/{size}{path}"
        reply = await self._get(url, {}, {}, MAX_IMAGE_BYTES, what=f"image {size}{path}")
        if reply.status == 404:
            raise NotFound(f"no image {size}{path} on TMDB")
        if reply.status != 200:
            raise self._failure(reply, f"image {size}{path}")
        if not reply.content_type.startswith("image/"):
            raise TmdbError(
                f"TMDB's image server sent {reply.content_type or 'something'} instead of "
                f"the image {size}{path}"
            )
        return reply.body, reply.content_type

    # -- plumbing --------------------------------------------------------------------
    async def _list(
        self, path: str, params: dict[str, str], *, movie_id: int | None = None
    ) -> dict[str, Any]:
        return await self._cached(path, params, LIST_TTL, parse_movie_page, movie_id=movie_id)

    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, extra query parameters) that identify us to TMDB."""
        if self._config.token:
            return {"Authorization": f"Bearer {self._config.token}"}, {}
        if self._config.api_key:
            return {}, {"api_key": self._config.api_key}
        raise TmdbError(
            "TMDB is not configured: set [tmdb] token (a v4 read access token from "
            "themoviedb.org, Settings → API) in the config file, or the MATINEE_TMDB_TOKEN "
            "environment variable"
        )

    async def _cached(
        self,
        path: str,
        params: dict[str, str],
        ttl: float,
        parse: Callable[[object], Mapping[str, object]],
        *,
        movie_id: int | None = None,
    ) -> dict[str, Any]:
        headers, auth_params = self._auth()
        params = {**params, "language": self._config.language}
        # Without the credentials: the same data whichever key fetched it, and no secret in
        # the database. With the base URL: a different TMDB (a test, a mirror) is other data.
        key = f"{_CACHE_PREFIX}{self._config.base_url}{path}?{urlencode(sorted(params.items()))}"
        cached = await self._store.cache.get(key, now=self._clock())
        if cached is not None:
            try:
                value = json.loads(cached)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
            log.warning("TMDB cache entry for %s is unreadable; fetching again", path)

        reply = await self._get(
            f"{self._config.base_url}{path}",
            {**params, **auth_params},
            headers,
            MAX_JSON_BYTES,
            what=path,
        )
        if reply.status == 404:
            if movie_id is not None:
                raise NotFound(f"no movie with id {movie_id} on TMDB")
            raise NotFound(f"TMDB has nothing at {path}")
        if reply.status != 200:
            raise self._failure(reply, path)
        result = parse(self._json(reply, path))
        await self._store.cache.put(
            key, json.dumps(result, ensure_ascii=False).encode(), ttl, now=self._clock()
        )
        return dict(result)

    async def _get(
        self,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        limit: int,
        *,
        what: str,
    ) -> _Reply:
        """GET with 429s waited out (at most MAX_RETRIES times); transport errors → TmdbError."""
        host = urlsplit(url).netloc
        for attempt in range(MAX_RETRIES + 1):
            log.debug("TMDB GET %s (attempt %d)", what, attempt + 1)
            try:
                async with self._follow(url, params, headers) as response:
                    if response.status == 429:
                        delay = retry_after_seconds(
                            response.headers.get("Retry-After"), self._clock()
                        )
                    else:
                        body = await _read_capped(response, limit)
                        return _Reply(response.status, body, response.content_type)
            # TimeoutError first: aiohttp's ServerTimeoutError is also a ClientError.
            except TimeoutError:
                raise TmdbUnreachable(
                    f"TMDB did not answer within {self._timeout_seconds:g} s ({what}); "
                    "try again later"
                ) from None
            except aiohttp.ClientError as exc:
                # `from None`: aiohttp's exceptions may carry the request URL, api_key included.
                reason = self._scrub(str(exc)) or type(exc).__name__
                raise TmdbUnreachable(f"cannot reach TMDB at {host}: {reason}") from None
            if attempt == MAX_RETRIES:
                break
            log.warning("TMDB is rate limiting %s; retrying in %g s", what, delay)
            await self._sleep(delay)
        raise TmdbError(
            "TMDB is rate limiting Matinee's requests (HTTP 429, still after "
            f"{MAX_RETRIES} retries); try again in a few seconds"
        )

    @asynccontextmanager
    async def _follow(
        self, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose redirects are followed only to the configured TMDB hosts (base_url
        and image_base_url): a redirect elsewhere is an error, never a request to a host
        somebody else chose. Credentials go only to the host they came with."""
        origins = {_origin(self._config.base_url), _origin(self._config.image_base_url)}
        first = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._session.get(
                url,
                params=params,
                headers=headers if _origin(url) == first else {},
                timeout=self._timeout,
                allow_redirects=False,
            )
            location = response.headers.get("Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                try:
                    yield response
                finally:
                    response.release()
                return
            response.release()
            target = str(response.url.join(URL(location)))
            if _origin(target) not in origins:
                where = self._scrub(_origin(target)[1] or location[:80])
                raise TmdbError(
                    f"TMDB redirected to {where}, which is not a configured TMDB host"
                    " ([tmdb] base_url, image_base_url); Matinee does not follow it"
                )
            url, params = target, {}
        raise TmdbError(f"TMDB redirected more than {MAX_REDIRECTS} times")

    def _json(self, reply: _Reply, what: str) -> object:
        try:
            return cast(object, json.loads(reply.body))
        except (ValueError, UnicodeDecodeError):
            kind = reply.content_type or "no content type"
            raise TmdbError(
                f"TMDB sent a reply that is not JSON for {what} (HTTP {reply.status}, {kind}); "
                "check [tmdb] base_url"
            ) from None

    def _failure(self, reply: _Reply, what: str) -> TmdbError:
        """The error for a reply that is neither 200 nor 404 nor 429."""
        try:
            body: object = json.loads(reply.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        said = tmdb_message(body)
        detail = f": {self._scrub(said)}" if said else ""
        if reply.status == 401:
            if self._config.token:
                setting = "[tmdb] token (or the MATINEE_TMDB_TOKEN environment variable)"
                credential = "v4 read access token"
            else:
                setting = "[tmdb] api_key (or the MATINEE_TMDB_API_KEY environment variable)"
                credential = "v3 API key"
            return TmdbError(
                f"TMDB refused the {credential}{detail}. Check {setting} in the config file."
            )
        if reply.status >= 500:
            return TmdbError(
                f"TMDB is having trouble (HTTP {reply.status} for {what}){detail}; try again later"
            )
        return TmdbError(f"TMDB refused the request for {what} (HTTP {reply.status}){detail}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts.scheme, parts.hostname or "", port


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    data = await read_capped(response, limit)
    if data is None:
        raise TmdbError(f"TMDB sent more than the {limit} bytes allowed")
    return data
