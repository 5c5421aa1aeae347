"""X-Forwarded-* headers: believed from the configured reverse proxies only."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from server.config.load import parse_config
from server.config.settings import IPNetwork
from server.errors import InvalidInput
from server.http import forwarded
from server.http.forwarded import Forwarded, forwarded_middleware, resolve_forwarded
from server.keys import SETTINGS
from server.ui.errors import errors_middleware


def nets(*specs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(s) for s in specs)


PROXY = nets("10.0.0.1")
PROXIES = nets("10.0.0.0/24", "fd00::/64")

# (peer, trusted, X-Forwarded-For values, -Proto values, -Host values, expected)
CASES: list[tuple[str, tuple[IPNetwork, ...], list[str], list[str], list[str], Forwarded]] = [
    # nothing configured, nothing believed
    ("10.0.0.1", (), ["203.0.113.5"], ["https"], ["evil.test"], Forwarded()),
    # an untrusted peer's headers are ignored, however they look
    ("192.0.2.1", PROXY, ["203.0.113.5"], ["https"], ["movies.test"], Forwarded()),
    ("192.0.2.1", PROXY, ["not an address"], ["gopher"], ["a b"], Forwarded()),
    ("192.0.2.1", PROXY, ["10.0.0.1"], [], [], Forwarded()),
    # one proxy
    ("10.0.0.1", PROXY, ["203.0.113.5"], [], [], Forwarded(remote="203.0.113.5")),
    (
        "10.0.0.1",
        PROXY,
        ["203.0.113.5"],
        ["https"],
        ["movies.example.com"],
        Forwarded("203.0.113.5", "https", "movies.example.com"),
    ),
    ("10.0.0.1", PROXY, [" 203.0.113.5 "], ["HTTPS"], [], Forwarded("203.0.113.5", "https")),
    ("10.0.0.1", PROXY, [], ["https"], [], Forwarded(scheme="https")),
    ("10.0.0.1", PROXY, [], [], ["example.com:8443"], Forwarded(host="example.com:8443")),
    ("10.0.0.1", PROXY, ["203.0.113.5"], ["wss"], [], Forwarded("203.0.113.5", "https")),
    # the client forged an address in front: the right-most untrusted one counts
    ("10.0.0.1", PROXY, ["198.51.100.1, 203.0.113.5"], [], [], Forwarded("203.0.113.5")),
    # a chain of trusted proxies is walked from the right
    (
        "10.0.0.2",
        PROXIES,
        ["203.0.113.5, 10.0.0.7, 10.0.0.3"],
        ["https, http, http"],
        [],
        Forwarded("203.0.113.5", "https"),
    ),
    # ...the same as several header lines
    (
        "10.0.0.2",
        PROXIES,
        ["203.0.113.5", "10.0.0.7, 10.0.0.3"],
        ["https", "http", "http"],
        [],
        Forwarded("203.0.113.5", "https"),
    ),
    # an untrusted hop in the middle stops the walk there, with its scheme
    (
        "10.0.0.2",
        PROXIES,
        ["203.0.113.5, 198.51.100.9, 10.0.0.3"],
        ["https, http, http"],
        [],
        Forwarded("198.51.100.9", "http"),
    ),
    # every hop trusted: the left-most is the client
    ("10.0.0.2", PROXIES, ["10.0.0.9, 10.0.0.3"], [], [], Forwarded("10.0.0.9")),
    # one proto value from the edge proxy only (Kubernetes ingress does this)
    (
        "10.0.0.2",
        PROXIES,
        ["203.0.113.5, 10.0.0.3"],
        ["https"],
        [],
        Forwarded("203.0.113.5", "https"),
    ),
    # IPv6, and IPv4 mapped into IPv6 on a dual-stack socket
    ("fd00::1", PROXIES, ["2001:db8::5"], [], [], Forwarded("2001:db8::5")),
    ("::ffff:10.0.0.1", PROXY, ["203.0.113.5"], [], [], Forwarded("203.0.113.5")),
    ("10.0.0.1", PROXY, ["::ffff:203.0.113.5"], [], [], Forwarded("203.0.113.5")),
    # the host nearest to us wins
    ("10.0.0.1", PROXY, [], [], ["outer.test, inner.test"], Forwarded(host="inner.test")),
    ("10.0.0.1", PROXY, [], [], ["[2001:db8::1]:443"], Forwarded(host="[2001:db8::1]:443")),
    # no peer address (a Unix socket)
    ("", PROXY, ["203.0.113.5"], ["https"], [], Forwarded()),
]


@pytest.mark.parametrize(("peer", "trusted", "xff", "proto", "host", "expected"), CASES)
def test_resolve(
    peer: str,
    trusted: tuple[IPNetwork, ...],
    xff: list[str],
    proto: list[str],
    host: list[str],
    expected: Forwarded,
) -> None:
    assert resolve_forwarded(peer, trusted, xff, proto, host) == expected


MALFORMED: list[tuple[list[str], list[str], list[str], str]] = [
    (["203.0.113.5, "], [], [], "X-Forwarded-For"),
    (["unknown"], [], [], "X-Forwarded-For"),
    (["203.0.113.5:4711"], [], [], "X-Forwarded-For"),
    (["[2001:db8::5]"], [], [], "X-Forwarded-For"),
    (["203.0.113.5;proto=https"], [], [], "X-Forwarded-For"),
    ([""], [], [], "X-Forwarded-For"),
    (["203.0.113.5"], ["gopher"], [], "X-Forwarded-Proto"),
    (["203.0.113.5"], [""], [], "X-Forwarded-Proto"),
    (["203.0.113.5"], ["https,"], [], "X-Forwarded-Proto"),
    (["203.0.113.5, 10.0.0.3"], ["https, http, http"], [], "X-Forwarded-Proto"),
    ([], ["https, http"], [], "X-Forwarded-Proto"),
    (["203.0.113.5"], [], [""], "X-Forwarded-Host"),
    (["203.0.113.5"], [], ["evil.test/path"], "X-Forwarded-Host"),
    (["203.0.113.5"], [], ["a b"], "X-Forwarded-Host"),
    (["203.0.113.5"], [], ["user@evil.test"], "X-Forwarded-Host"),
    (["203.0.113.5"], [], ["host\\x"], "X-Forwarded-Host"),
]


@pytest.mark.parametrize(("xff", "proto", "host", "header"), MALFORMED)
def test_malformed_values_from_a_trusted_proxy(
    xff: list[str], proto: list[str], host: list[str], header: str
) -> None:
    with pytest.raises(InvalidInput, match=header):
        resolve_forwarded("10.0.0.1", PROXIES, xff, proto, host)
    # the same from anyone else is simply ignored
    assert resolve_forwarded("192.0.2.1", PROXIES, xff, proto, host) == Forwarded()


# --------------------------------------------------------------------------- as middleware


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "remote": request.remote,
            "scheme": request.scheme,
            "secure": request.secure,
            "host": request.host,
        }
    )


def app_trusting(tmp_path: Path, *trusted: str) -> web.Application:
    settings = parse_config(
        {"server": {"trusted_proxies": list(trusted)}}, base_dir=tmp_path, env={}
    )
    app = web.Application(middlewares=[errors_middleware, forwarded_middleware])
    app[SETTINGS] = settings
    forwarded.setup(app)
    app.router.add_get("/", echo)
    return app


@pytest.mark.parametrize(
    ("trusted", "headers", "expected"),
    [
        ((), {"X-Forwarded-For": "203.0.113.5"}, {"remote": "127.0.0.1", "secure": False}),
        (
            ("192.0.2.0/24",),
            {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"},
            {"remote": "127.0.0.1", "secure": False},
        ),
        (
            ("127.0.0.1",),
            {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"},
            {"remote": "203.0.113.5", "scheme": "https", "secure": True},
        ),
        (
            ("127.0.0.0/8",),
            {"X-Forwarded-Host": "movies.example.com"},
            {"remote": "127.0.0.1", "host": "movies.example.com", "scheme": "http"},
        ),
        (("127.0.0.1",), {}, {"remote": "127.0.0.1", "scheme": "http", "secure": False}),
    ],
)
async def test_middleware_applies_what_it_trusts(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    trusted: tuple[str, ...],
    headers: dict[str, str],
    expected: dict[str, Any],
) -> None:
    client = await aiohttp_client(app_trusting(tmp_path, *trusted))
    resp = await client.get("/", headers=headers)
    assert resp.status == 200
    seen = await resp.json()
    assert {key: seen[key] for key in expected} == expected


async def test_middleware_rejects_malformed_values_from_its_proxy(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(app_trusting(tmp_path, "127.0.0.1"))
    resp = await client.get("/", headers={"X-Forwarded-For": "203.0.113.5, bogus"})
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "INVALID_INPUT"
    assert "X-Forwarded-For" in body["error"] and "'bogus'" in body["error"]
    # from an untrusted peer the same request is served, as if the header were not there
    client = await aiohttp_client(app_trusting(tmp_path, "192.0.2.1"))
    resp = await client.get("/", headers={"X-Forwarded-For": "203.0.113.5, bogus"})
    assert resp.status == 200
    assert (await resp.json())["remote"] == "127.0.0.1"
