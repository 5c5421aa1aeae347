"""Who reads a job's movie: the view new responses read, and how many read each view.

A job's movie is read through a ``MediaView`` that changes twice: when the job becomes
playable (a view over the downloading files) and when it is ready (a view over the finished
files). A response may be in the middle of the movie at either moment. So that no file
moves or goes under it, each response holds a ``Reading``: it counts the response as a
reader of one view at a time and, between reads, moves it on to the job's current view when
that holds the same movie (same ETag and size). Files that only a superseded view reads are
deleted once ``Movie.idle`` says no response reads through it any more.
"""

from __future__ import annotations

import asyncio

from nntp.media import MediaView

__all__ = ["Movie", "Reading", "same_movie"]


def same_movie(a: MediaView, b: MediaView) -> bool:
    """True when two views hold the same bytes: the ETag names the movie, not its files."""
    return a.etag == b.etag and a.size == b.size


class Movie:
    """One job's movie: the current view and the responses reading each view."""

    def __init__(self, view: MediaView | None = None, *, final: bool = False) -> None:
        """``final``: ``view`` is the last this movie will have (no newer view to wait for)."""
        self._view = view
        self._final = final
        self._readers: dict[MediaView, int] = {}
        self._changed = asyncio.Event()  # set (and replaced) at each swap
        self._left = asyncio.Event()  # set (and replaced) when a view loses its last reader

    @property
    def view(self) -> MediaView | None:
        return self._view

    def swap(self, view: MediaView | None) -> MediaView | None:
        """Make ``view`` the one responses read from now on; returns the previous one.

        Responses reading the previous one move on at their next read when both hold the
        same movie; None (the job failed, retried or was deleted) leaves them where they are.
        """
        old, self._view = self._view, view
        self._changed.set()
        self._changed = asyncio.Event()
        return old

    def read(self, name: str | None = None) -> Reading | None:
        """A reading of the current view (named ``name`` when given), or None."""
        view = self._view
        if view is None or (name is not None and view.name != name):
            return None
        return Reading(self, view)

    def readers(self, view: MediaView) -> int:
        """How many responses read through ``view`` now."""
        return self._readers.get(view, 0)

    async def idle(self, view: MediaView) -> None:
        """Until no response reads through ``view``."""
        while self._readers.get(view, 0):
            await self._left.wait()

    async def changed(self, view: MediaView) -> MediaView | None:
        """Until the current view is another than ``view``; returns it (None: no view, or
        none will come)."""
        if self._final:
            return None
        while self._view is view:
            await self._changed.wait()
        return self._view

    def _hold(self, view: MediaView) -> None:
        self._readers[view] = self._readers.get(view, 0) + 1

    def _drop(self, view: MediaView) -> None:
        left = self._readers.get(view, 0) - 1
        if left > 0:
            self._readers[view] = left
            return
        self._readers.pop(view, None)
        self._left.set()
        self._left = asyncio.Event()


class Reading:
    """One response's hold on a movie: the view it reads now (see the module docstring).

    Release it (``release``) when the response ends, however it ends.
    """

    def __init__(self, movie: Movie, view: MediaView) -> None:
        self._movie = movie
        self._view: MediaView | None = view
        movie._hold(view)

    @property
    def view(self) -> MediaView:
        if self._view is None:
            raise RuntimeError("the reading was released")
        return self._view

    def follow(self) -> MediaView:
        """The view to read next: the movie's current one when it holds the same bytes
        (this response then counts as its reader instead), else the one read so far."""
        view = self.view
        current = self._movie.view
        if current is not None and current is not view and same_movie(current, view):
            self._movie._hold(current)
            self._movie._drop(view)
            self._view = view = current
        return view

    async def next_view(self) -> MediaView | None:
        """Until the movie has another view than the one read; the view to read then, or
        None when the movie is gone or the new view holds other bytes."""
        view = self.view
        current = await self._movie.changed(view)
        if current is None or not same_movie(current, view):
            return None
        return self.follow()

    def release(self) -> None:
        """No longer a reader (idempotent)."""
        if self._view is not None:
            self._movie._drop(self._view)
            self._view = None
