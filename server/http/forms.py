"""Reading a request's form or JSON body without trusting it: whatever a client sends (an
unknown charset, bytes that are not UTF-8, multipart without its boundary, JSON nested a
hundred thousand deep), the answer is ``InvalidInput`` (400, in the error shape), never an
unhandled exception and a traceback in the log."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from server.errors import InvalidInput

#: What reading a body can raise when the body, not the server, is wrong.
_BAD_BODY = (
    ValueError,
    LookupError,
    UnicodeDecodeError,
    AssertionError,
    RecursionError,
    HttpProcessingError,  # a multipart part with broken headers
)


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The urlencoded or multipart form of a request."""
    try:
        return await request.post()
    except web.HTTPException:
        raise  # too large (413): aiohttp's own answer
    except _BAD_BODY as exc:
        raise InvalidInput(f"the form cannot be read: {_short(exc)}") from None


async def read_json(request: web.Request) -> dict[str, Any]:
    """A JSON object from the body."""
    try:
        raw = await request.read()
        body = json.loads(raw.decode(request.charset or "utf-8"))
    except web.HTTPException:
        raise
    except _BAD_BODY as exc:
        raise InvalidInput(f"the body is not valid JSON: {_short(exc)}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the JSON body must be an object")
    return body


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deep"
    if isinstance(exc, LookupError):
        return "its charset is unknown"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


async def read_upload(request: web.Request, field: str, limit: int) -> tuple[bytes, str | None]:
    """The file in multipart field ``field`` (at most ``limit`` bytes) and its file name."""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != field:
                continue
            data = bytearray()
            while chunk := await part.read_chunk(256 * 1024):
                data += chunk
                if len(data) > limit:
                    raise InvalidInput(f"the file is larger than {limit // (1024 * 1024)} MiB")
            return bytes(data), part.filename
    except web.HTTPException:
        raise
    except _BAD_BODY as exc:
        raise InvalidInput(f"the multipart body cannot be read: {_short(exc)}") from None
    raise InvalidInput(f"the multipart body needs a file field named {field!r}")
