"""The household's password and credential epoch as the running server knows them.

They live in the store (``server.store.credentials``), so `matinee set-password` in another
process, the first-run page and the account page all take effect at once: this process
re-reads them every ``POLL`` seconds and right after its own changes. ``[auth]
password_hash`` in the config file seeds the store when it holds no password, and keeps
doing so while the password has only ever come from there; once one was set by
set-password or a page, the config file's is ignored (and the log says so).

Media tokens are signed with a key derived from the app secret and the epoch: a password
change or "log out everywhere" makes every media URL handed out before it stop working.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.http.passwords import PasswordState, hash_state
from server.keys import CREDENTIALS, SECRET, SETTINGS, STORE
from server.store.credentials import Credentials
from server.store.db import Store

log = logging.getLogger(__name__)

POLL = 2.0  # seconds between looks at the store for changes made by another process


class CredentialsWatch:
    def __init__(self, store: Store, secret: bytes, current: Credentials) -> None:
        self._store = store
        self._secret = secret
        self.current = current
        self._changing = asyncio.Lock()

    def changing(self) -> asyncio.Lock:
        """Held around a check-then-change (the first password is chosen once)."""
        return self._changing

    @property
    def state(self) -> PasswordState:
        return hash_state(self.current.password_hash)

    def media_key(self) -> bytes:
        """What media tokens are signed with now (server.http.tokens)."""
        label = f"media tokens\n{self.current.epoch}".encode()
        return hmac.new(self._secret, label, hashlib.sha256).digest()

    async def refresh(self) -> Credentials:
        self.current = await self._store.credentials.get()
        return self.current

    async def set_password(self, password_hash: str) -> Credentials:
        self.current = await self._store.credentials.set_password(password_hash)
        log.info("the password was changed: every session ended")
        return self.current

    async def log_out_everywhere(self) -> Credentials:
        self.current = await self._store.credentials.log_out_everywhere()
        log.info("logged out everywhere: every session and media link ended")
        return self.current

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            try:
                await self.refresh()
            except Exception:  # a failed look must not stop later ones
                log.exception("cannot read the credentials")


async def seed_from_config(store: Store, configured: str | None) -> Credentials:
    """The config file's password into the store, while the store has none of its own."""
    current = await store.credentials.get()
    if not configured or current.password_hash == configured:
        return current
    if current.source == "set":
        log.warning(
            "[auth] password_hash in the config file is ignored: the password was set with"
            " `matinee set-password` or in the browser since; remove the line"
        )
        return current
    return await store.credentials.set_password(configured, source="config")


async def _credentials_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    current = await seed_from_config(store, app[SETTINGS].auth.password_hash)
    watch = CredentialsWatch(store, app[SECRET], current)
    app[CREDENTIALS] = watch
    poller = asyncio.create_task(watch.poll(), name="credentials")
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller


def setup(app: web.Application) -> None:
    """After the store's context."""
    app.cleanup_ctx.append(_credentials_ctx)
