"""server.jobs.readers: which view a response reads, and when a superseded view is idle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from nntp.media import Piece
from server.jobs.readers import Movie


class View:
    """A MediaView whose bytes are never read here: only its identity matters."""

    def __init__(self, etag: str, size: int = 100, name: str = "movie.mkv") -> None:
        self.name, self.size, self.etag, self.content_type = name, size, etag, "video/x-matroska"

    def pieces(self, offset: int, length: int) -> list[Piece]:
        return []

    def available(self, offset: int) -> int:
        return 0

    async def wait(self, offset: int, end: int) -> None:
        return None

    def prioritise(self, offset: int, end: int) -> Callable[[], None]:
        return lambda: None

    async def read(self, offset: int, length: int) -> bytes:
        return b""


async def test_a_reading_moves_on_to_a_view_of_the_same_movie_and_frees_the_old() -> None:
    downloading, ready = View('"a-100"'), View('"a-100"')
    movie = Movie(downloading)
    reading = movie.read("movie.mkv")
    assert reading is not None and movie.readers(downloading) == 1
    assert movie.swap(ready) is downloading
    idle = asyncio.create_task(movie.idle(downloading))
    await asyncio.sleep(0)
    assert not idle.done()  # the response still reads the downloading view
    assert reading.follow() is ready
    await asyncio.wait_for(idle, 1)
    assert movie.readers(downloading) == 0 and movie.readers(ready) == 1
    reading.release()
    reading.release()  # idempotent
    assert movie.readers(ready) == 0


async def test_a_reading_stays_with_its_view_when_the_movie_changes_or_goes() -> None:
    first, other = View('"a-100"'), View('"b-100"')
    movie = Movie(first)
    reading = movie.read()
    assert reading is not None
    movie.swap(other)  # another release: other bytes
    assert reading.follow() is first
    movie.swap(None)  # the job failed or was deleted
    assert reading.follow() is first
    assert movie.read() is None
    reading.release()
    await asyncio.wait_for(movie.idle(first), 1)


async def test_next_view_waits_for_the_finished_view_or_says_none_will_come() -> None:
    downloading, ready = View('"a-100"'), View('"a-100"')
    movie = Movie(downloading)
    reading = movie.read()
    assert reading is not None
    waiting = asyncio.create_task(reading.next_view())
    await asyncio.sleep(0)
    assert not waiting.done()
    movie.swap(ready)
    assert await asyncio.wait_for(waiting, 1) is ready

    failed = Movie(View('"c-100"'))
    gone = failed.read()
    assert gone is not None
    waiting = asyncio.create_task(gone.next_view())
    await asyncio.sleep(0)
    failed.swap(None)
    assert await asyncio.wait_for(waiting, 1) is None

    fixed = Movie(View('"d-100"'), final=True).read()
    assert fixed is not None
    assert await asyncio.wait_for(fixed.next_view(), 1) is None


def test_a_name_other_than_the_movie_s_finds_nothing() -> None:
    assert Movie(View('"a-100"')).read("other.mkv") is None
    assert Movie().read() is None
    with pytest.raises(RuntimeError):
        reading = Movie(View('"a-100"')).read()
        assert reading is not None
        reading.release()
        _ = reading.view
