"""Reading what a request asks for: query parameters, path parts and JSON bodies, each
refused with ``InvalidInput`` saying what a valid one looks like."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from server.errors import InvalidInput
from server.http.forms import read_json

_JOB_ID = re.compile(r"job_\d{1,16}_[0-9a-f]{8}")


async def json_body(request: web.Request) -> dict[str, Any]:
    return await read_json(request)


def page(request: web.Request) -> int:
    raw = request.query.get("page", "1").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise InvalidInput("page must be a whole number from 1 to 500")
    return int(raw)


def movie_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 10:
        raise InvalidInput("the movie id must be a positive whole number")
    return int(raw)


def job_id(request: web.Request) -> str:
    raw = request.match_info["job_id"]
    if not _JOB_ID.fullmatch(raw):
        raise InvalidInput(f"{raw[:40]!r} is not a job id (job_<milliseconds>_<8 hex digits>)")
    return raw


def is_job_id(raw: str) -> bool:
    return _JOB_ID.fullmatch(raw) is not None
