"""Searching newznab indexers: all enabled ones at once, cached, and rested when they say enough.

One :class:`Indexers` per application holds what each indexer told us: its capabilities
(``t=caps``, read once a day), its ``newznab:apilimits``, its last success and error, and
whether it is resting. A movie search asks every enabled indexer concurrently, by IMDb id
where the indexer supports it and by title and year otherwise, and returns what answered
together with a message per indexer that did not; only when none answered is that an
:class:`~server.errors.IndexerError`.

Resting: an indexer over its request limit (newznab 500/501, or HTTP 429) is not asked again
until ``Retry-After`` has passed, or else 1, 2, 4 ... minutes (at most an hour) after each
consecutive refusal; one refusing the API key (100-102) rests for hours, since only a new
key helps. A resting indexer is skipped without a request and reported as resting.

API keys: they go out as the ``apikey`` parameter and nowhere else. Indexers echo the key in
the NZB links of their results (``...t=get&id=...&apikey=KEY``); replies are rewritten on
arrival so those links hold :data:`APIKEY_PLACEHOLDER` instead, which :meth:`Indexers.fetch_nzb`
swaps back for the key just before the request. So items, the cache, jobs that keep a link,
logs and error messages never hold a key; messages are masked as well, in case an indexer
quotes the key in an error description.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import quote, urlencode

import aiohttp

from server.config.settings import IndexerConfig
from server.discovery import nzb_source
from server.discovery.indexer_requests import (
    APIKEY_PLACEHOLDER,
    host,
    imdb_digits,
    key_forms,
    key_hint,
    known_categories,
    maybe_error_document,
    redactor,
    relevant,
    search_query,
)
from server.discovery.newznab import (
    ApiLimits,
    Caps,
    NewznabError,
    NewznabItem,
    SearchResult,
    parse_caps,
    parse_error,
    parse_search,
)
from server.discovery.replies import read_capped, retry_after
from server.errors import IndexerError
from server.logs import MASK
from server.store.db import Store

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_T = TypeVar("_T")

#: Written in place of the API key inside links taken from an indexer's replies.

SEARCH_TTL = 15 * 60.0
CAPS_TTL = 24 * 3600.0
#: After caps could not be read, search by title for this long before asking again.
CAPS_RETRY = 10 * 60.0
#: Seconds one indexer gets to answer a whole search (caps and fallback included).
DEFAULT_TIMEOUT = 30.0
REST_FIRST = 60.0
REST_MAX = 3600.0
CREDENTIALS_REST = 6 * 3600.0
RETRY_AFTER_MAX = 24 * 3600.0
SEARCH_LIMIT = 100
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: Secrets shorter than this are not masked in text (as in server.logs): it would mangle it.
_MIN_MASKED = 4

#: What a failed caps read leaves us assuming: no id search, title search only.
NO_CAPS = Caps(
    server_title=None,
    server_version=None,
    app_version=None,
    limit_max=None,
    limit_default=None,
    retention_days=None,
    searching=(),
    categories=(),
)


@dataclass(slots=True)
class SearchOutcome:
    """What a movie search found on the indexers that answered."""

    #: Every indexer's items in configuration order, duplicates across indexers included
    #: (``releases.rank`` merges them). Links hold :data:`APIKEY_PLACEHOLDER`, not the key.
    items: list[NewznabItem]
    #: Indexer name -> why it gave nothing this time (resting, error, timeout).
    errors: dict[str, str]
    #: Indexer name -> the latest ``newznab:apilimits`` it sent, for those that send them.
    apilimits: dict[str, ApiLimits]


@dataclass(frozen=True, slots=True)
class IndexerStatus:
    """One configured indexer as the Status page shows it. Times are Unix seconds."""

    name: str
    #: Host (and port, when not the scheme's default) of the configured URL.
    host: str
    enabled: bool
    last_ok: float | None
    last_error: str | None
    last_error_at: float | None
    #: Set only while the indexer is resting.
    resting_until: float | None
    apilimits: ApiLimits | None
    #: Whether caps advertise ``t=movie&imdbid=``; None before caps were read, or when the
    #: indexer does not say (then the id search is tried and a 201/203 falls back to title).
    imdb_search: bool | None


FailureKind = Literal["resting", "request", "other"]


class _Failure(Exception):
    """One indexer could not answer; ``message`` is for a person and holds no secret."""

    def __init__(self, message: str, kind: FailureKind = "other") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(slots=True)
class _State:
    config: IndexerConfig
    redact: Callable[[bytes], bytes]
    caps: Caps | None = None
    caps_at: float | None = None
    caps_failure: str | None = None
    caps_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    resting_until: float | None = None
    rest_reason: str = ""
    #: Consecutive "over the limit" answers; the next rest doubles with each.
    strikes: int = 0
    apilimits: ApiLimits | None = None

    @property
    def name(self) -> str:
        return self.config.name


class Indexers:
    """Every configured newznab indexer, searched together. Owns no connection: the session
    and the store belong to the application."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        configs: Sequence[IndexerConfig],
        store: Store,
        *,
        clock: Clock = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._store = store
        self._clock = clock
        self._timeout = timeout
        self._backstop = aiohttp.ClientTimeout(total=timeout + 5)
        self._states: dict[str, _State] = {}
        for config in configs:
            if config.name in self._states:
                raise ValueError(f"two indexers are named {config.name!r}")
            self._states[config.name] = _State(config, redactor(config.api_key))
        self._secrets = sorted(
            {
                form
                for c in configs
                if c.api_key and len(c.api_key) >= _MIN_MASKED
                for form in key_forms(c.api_key)
            },
            key=len,
            reverse=True,
        )

    # -- public ----------------------------------------------------------------------------
    @property
    def enabled(self) -> list[str]:
        return [s.name for s in self._states.values() if s.config.enabled]

    def priorities(self) -> dict[str, int]:
        """Indexer name -> configured priority, for ``releases.rank(indexer_priority=...)``."""
        return {name: s.config.priority for name, s in self._states.items()}

    async def caps(self, name: str) -> Caps:
        """The capabilities of enabled indexer ``name`` (KeyError if there is none).

        Read once and kept 24 h in memory and in the store. When they cannot be read the
        answer is :data:`NO_CAPS`, which means "search by title" to the caller.
        """
        state = self._enabled_state(name)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._load_caps(state)
        except _Failure as failure:
            message = failure.message
        except TimeoutError:
            message = f"no answer within {self._timeout:g} s"
        self._failed(state, message)
        return NO_CAPS

    async def search_movie(
        self, *, imdb_id: str | None, title: str, year: int | None
    ) -> SearchOutcome:
        """Releases of one film from every enabled indexer, searched concurrently.

        Raises IndexerError when no indexer answered (each one's reason in the message), and
        ValueError when there is neither a usable IMDb id nor a title.
        """
        digits = imdb_digits(imdb_id)
        query = search_query(title, year)
        if digits is None and not query:
            raise ValueError("a movie search needs an IMDb id or a title")
        states = [s for s in self._states.values() if s.config.enabled]
        if not states:
            raise IndexerError(
                "No indexer is configured: add one under [[indexers]] in the configuration"
            )
        answers = await asyncio.gather(
            *(self._search_one(s, digits, query) for s in states), return_exceptions=True
        )
        items: list[NewznabItem] = []
        errors: dict[str, str] = {}
        for state, answer in zip(states, answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer  # a bug or a broken store, not an indexer problem
            found, error = answer
            items.extend(found)
            if error is not None:
                errors[state.name] = error
        if len(errors) == len(states):
            listed = "; ".join(f"{name}: {message}" for name, message in errors.items())
            raise IndexerError(f"No indexer answered the search. {listed}")
        apilimits = {s.name: s.apilimits for s in states if s.apilimits is not None}
        return SearchOutcome(items, errors, apilimits)

    def status(self) -> list[IndexerStatus]:
        """Every configured indexer, enabled or not, in configuration order."""
        now = self._clock()
        out = []
        for state in self._states.values():
            resting = state.resting_until
            out.append(
                IndexerStatus(
                    name=state.name,
                    host=host(state.config.url),
                    enabled=state.config.enabled,
                    last_ok=state.last_ok,
                    last_error=state.last_error,
                    last_error_at=state.last_error_at,
                    resting_until=resting if resting is not None and resting > now else None,
                    apilimits=state.apilimits,
                    imdb_search=state.caps.movie_search_by_imdb if state.caps else None,
                )
            )
        return out

    async def fetch_nzb(self, link: str) -> tuple[bytes, str | None]:
        """The NZB behind a search result's link, and the file name the indexer gave it.

        Only hosts of enabled indexers are fetched from (InvalidInput for any other, from
        ``nzb_source``); the key goes back into the link here. An error document served in
        place of the NZB (a grab limit, an id that is gone) raises IndexerError with the
        indexer's own description.
        """
        state = self._state_for_link(link)
        url = link
        if state is not None and state.config.api_key:
            key = quote(state.config.api_key, safe="")
            for form in (APIKEY_PLACEHOLDER, quote(APIKEY_PLACEHOLDER, safe="")):
                url = url.replace(form, key)
        enabled = [s.config for s in self._states.values() if s.config.enabled]
        try:
            data, filename = await nzb_source.download_nzb(self._session, url, enabled)
        except IndexerError as exc:
            message = self.mask(exc.message)
            if state is not None:
                self._failed(state, message)
            raise IndexerError(message) from None
        if maybe_error_document(data):
            error = parse_error(data, indexer=state.name if state else None)
            if error is not None and error.code is not None:
                said = f"{self.mask(error.description)} (newznab error {error.code})"
                where = state.name if state is not None else "The indexer"
                message = f"{where} did not give the NZB: {said}"
                if error.bad_credentials:
                    message += key_hint(where)
                if state is not None:
                    self._failed(state, message)
                raise IndexerError(message)
        if state is not None:
            state.last_ok = self._clock()
        return data, filename

    def mask(self, text: str) -> str:
        """``text`` with every configured API key (and its URL-encoded forms) masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    # -- one indexer's search ----------------------------------------------------------------
    async def _search_one(
        self, state: _State, digits: str | None, query: str
    ) -> tuple[list[NewznabItem], str | None]:
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._search_indexer(state, digits, query)
        except _Failure as failure:
            message = failure.message
        except TimeoutError:
            message = f"no answer within {self._timeout:g} s"
        else:
            return found, None
        self._failed(state, message)
        return [], message

    async def _search_indexer(
        self, state: _State, digits: str | None, query: str
    ) -> list[NewznabItem]:
        caps = await self._caps_for_search(state)
        params: dict[str, str] = {"extended": "1"}
        categories = known_categories(state.config.categories, caps)
        if categories:
            params["cat"] = ",".join(str(c) for c in categories)
        limit = SEARCH_LIMIT
        if caps is not None and caps.limit_max:
            limit = min(limit, caps.limit_max)
        params["limit"] = str(limit)

        wanted = f"tt{digits}" if digits else None
        by_imdb = caps.movie_search_by_imdb if caps is not None else False
        items: list[NewznabItem] = []
        if digits and (by_imdb is not False or not query):
            try:
                found = await self._search(state, {"t": "movie", "imdbid": digits, **params})
            except _Failure as failure:
                if failure.kind != "request" or not query:
                    raise
                # 201/203: the indexer cannot search by id after all.
                log.info("%s: id search refused (%s); searching by title", state.name, failure)
            else:
                items = relevant(found, wanted)
        if not items and query:
            found = await self._search(state, {"t": "search", "q": query, **params})
            items = relevant(found, wanted)
        return items

    async def _search(self, state: _State, params: dict[str, str]) -> list[NewznabItem]:
        result, fresh = await self._call(
            state, params, SEARCH_TTL, lambda body: parse_search(body, indexer=state.name)
        )
        if fresh:
            self._note_limits(state, result)
        what = f"imdbid={params['imdbid']}" if "imdbid" in params else f"q={params.get('q')!r}"
        log.info(
            "%s: t=%s %s: %d item(s)%s",
            state.name,
            params["t"],
            what,
            len(result.items),
            "" if fresh else " (cached)",
        )
        return list(result.items)

    def _note_limits(self, state: _State, result: SearchResult) -> None:
        limits = result.apilimits
        if limits is None:
            return
        state.apilimits = limits
        if limits.api_max and limits.api_current is not None:
            left = limits.api_max - limits.api_current
            if left <= max(1, limits.api_max // 20):
                log.warning(
                    "%s: %d of %d API requests left today", state.name, left, limits.api_max
                )

    # -- caps ---------------------------------------------------------------------------------
    async def _caps_for_search(self, state: _State) -> Caps | None:
        """Caps, or None when they cannot be read (then: title search). Resting propagates."""
        try:
            return await self._load_caps(state)
        except _Failure as failure:
            if failure.kind == "resting":
                raise
            return None

    async def _load_caps(self, state: _State) -> Caps:
        async with state.caps_lock:  # one caps request per indexer, however many searches
            now = self._clock()
            if state.caps_at is not None and now - state.caps_at < CAPS_TTL:
                if state.caps is not None:
                    return state.caps
                if state.caps_failure is not None and now - state.caps_at < CAPS_RETRY:
                    raise _Failure(state.caps_failure)
            try:
                caps, _ = await self._call(state, {"t": "caps"}, CAPS_TTL, parse_caps)
            except _Failure as failure:
                if failure.kind != "resting":
                    log.warning(
                        "%s: cannot read caps (%s); searching by title", state.name, failure
                    )
                    state.caps, state.caps_at = None, now
                    state.caps_failure = f"cannot read caps: {failure.message}"
                raise
            state.caps, state.caps_at, state.caps_failure = caps, now, None
            return caps

    # -- one request ----------------------------------------------------------------------------
    async def _call(
        self, state: _State, params: dict[str, str], ttl: float, parse: Callable[[bytes], _T]
    ) -> tuple[_T, bool]:
        """Parsed reply to ``params`` and whether it came from the indexer (not the cache).

        Cached bodies are already redacted; failures are not cached.
        """
        key = self._cache_key(state, params)
        cached = await self._store.cache.get(key, now=self._clock())
        if cached is not None:
            try:
                return parse(cached), False
            except NewznabError:
                log.warning("%s: dropping an unreadable cached reply", state.name)
        self._check_rest(state)
        status, body, retry_after = await self._http(state, params)
        body = state.redact(body)
        try:
            if status == 429:
                error = parse_error(body)
                said = f": {self.mask(error.description)}" if error and error.code else ""
                raise self._rest(
                    state, f"the indexer answered HTTP 429 (too many requests){said}", retry_after
                )
            if not 200 <= status < 300:
                error = parse_error(body)
                if error is not None and error.code is not None:
                    raise error
                raise _Failure(f"the indexer answered HTTP {status}")
            result = parse(body)
        except NewznabError as exc:
            raise self._newznab_failure(state, exc, retry_after) from None
        state.last_ok = self._clock()
        state.strikes = 0
        await self._store.cache.put(key, body, ttl, now=self._clock())
        return result, True

    async def _http(self, state: _State, params: dict[str, str]) -> tuple[int, bytes, float | None]:
        config = state.config
        query = dict(params)
        if config.api_key:
            query["apikey"] = config.api_key
        log.debug("%s: GET %s/api?%s", state.name, config.url, urlencode(params))
        try:
            # The callers' asyncio.timeout is the budget. aiohttp's own timer is only a backstop,
            # set later: two timers firing together can swallow one another's cancellation.
            async with self._session.get(
                f"{config.url}/api", params=query, timeout=self._backstop
            ) as resp:
                body = await read_capped(resp, MAX_REPLY_BYTES)
                if body is None:
                    raise _Failure("the indexer's reply is larger than 16 MiB")
                retry_after = _retry_after(resp.headers.get("Retry-After"), self._clock())
                return resp.status, body, retry_after
        except TimeoutError:
            raise _Failure(f"no answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            detail = self.mask(str(exc)) or type(exc).__name__
            raise _Failure(f"cannot reach the indexer: {detail}") from None

    def _newznab_failure(
        self, state: _State, exc: NewznabError, retry_after: float | None
    ) -> _Failure:
        description = self.mask(exc.description)
        if exc.code is None:
            return _Failure(f"unreadable reply: {description}")
        said = f"{description} (newznab error {exc.code})"
        if exc.rate_limited:
            return self._rest(state, f"the indexer said: {said}", retry_after)
        if exc.bad_credentials:
            reason = f"the indexer refused the API key: {said}{key_hint(state.name)}"
            return self._rest(state, reason, CREDENTIALS_REST, strike=False)
        return _Failure(
            f"the indexer said: {said}", kind="request" if exc.kind == "request" else "other"
        )

    # -- resting ---------------------------------------------------------------------------------
    def _rest(
        self, state: _State, reason: str, seconds: float | None, *, strike: bool = True
    ) -> _Failure:
        if strike:
            state.strikes += 1
            if seconds is None:
                seconds = min(REST_FIRST * 2 ** min(state.strikes - 1, 16), REST_MAX)
        elif seconds is None:
            seconds = REST_MAX
        state.resting_until = self._clock() + seconds
        state.rest_reason = reason
        return _Failure(_resting_message(state), kind="resting")

    def _check_rest(self, state: _State) -> None:
        if state.resting_until is None:
            return
        if self._clock() < state.resting_until:
            raise _Failure(_resting_message(state), kind="resting")
        state.resting_until = None  # rested; strikes stay until a success

    # -- bookkeeping -------------------------------------------------------------------------------
    def _failed(self, state: _State, message: str) -> None:
        state.last_error = message
        state.last_error_at = self._clock()
        log.warning("%s: %s", state.name, message)

    def _enabled_state(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None or not state.config.enabled:
            raise KeyError(f"no enabled indexer is named {name!r}")
        return state

    def _state_for_link(self, link: str) -> _State | None:
        where = nzb_source.origin(link)
        if where is None:
            return None
        same = [
            s
            for s in self._states.values()
            if s.config.enabled and nzb_source.origin(s.config.url) == where
        ]
        # Two indexers on one host (two accounts, or paths): the one whose URL prefixes the link.
        return next((s for s in same if link.startswith(s.config.url + "/")), None) or next(
            iter(same), None
        )

    def _cache_key(self, state: _State, params: dict[str, str]) -> str:
        query = urlencode(sorted(params.items()))
        return self.mask(f"newznab:{state.name}:{state.config.url}/api?{query}")


def _resting_message(state: _State) -> str:
    until = state.resting_until or 0.0
    return (
        f"resting until {time.strftime('%H:%M', time.localtime(until))} because {state.rest_reason}"
    )


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header, at least one and at most RETRY_AFTER_MAX."""
    seconds = retry_after(value, now)
    return None if seconds is None else min(max(seconds, 1.0), RETRY_AFTER_MAX)
