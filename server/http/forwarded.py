"""X-Forwarded-For, -Proto and -Host, believed only from the reverse proxies in
``[server] trusted_proxies``, after home-assistant's http/forwarded.py.

From a trusted peer: the client address is the right-most X-Forwarded-For entry that is
not itself a trusted proxy (the left-most when all are); the scheme is the X-Forwarded-Proto
entry at the same position (or its only entry); the host is the right-most X-Forwarded-Host
entry. A trusted proxy that sends malformed values gets 400, so a misconfigured proxy shows
at once instead of every client sharing the proxy's address (and its login rate limit).

From any other peer the headers are ignored: anyone can send them.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from server.config.settings import IPNetwork
from server.errors import InvalidInput
from server.keys import PROXIES_WARNED, SETTINGS

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: ws/wss are what some proxies (Traefik) report for upgraded connections.
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_HOST = re.compile(r"(?:[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What the request looks like from the client's side; None = as the socket says."""

    remote: str | None = None
    scheme: str | None = None
    host: str | None = None


def parse_address(text: str) -> IPAddress | None:
    """An IP address, with IPv4-mapped IPv6 (``::ffff:10.0.0.1``) read as IPv4."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def _items(values: Sequence[str]) -> list[str]:
    """Several headers of one name are one comma-separated list (RFC 9110 §5.3)."""
    return [item.strip() for value in values for item in value.split(",")]


def resolve_forwarded(
    peer: str | None,
    trusted: Sequence[IPNetwork],
    forwarded_for: Sequence[str] = (),
    forwarded_proto: Sequence[str] = (),
    forwarded_host: Sequence[str] = (),
) -> Forwarded:
    """Apply the X-Forwarded-* header values (each header's values as received) sent by
    ``peer``, the address at the other end of the socket. Raises InvalidInput for
    malformed values from a trusted peer."""
    peer_address = parse_address(peer) if peer else None
    if peer_address is None or not is_trusted(peer_address, trusted):
        return Forwarded()

    remote: str | None = None
    chain: list[IPAddress] = []  # right to left: the nearest hop first
    if forwarded_for:
        for item in reversed(_items(forwarded_for)):
            address = parse_address(item)
            if address is None:
                raise InvalidInput(f"X-Forwarded-For from {peer}: {item!r} is not an IP address")
            chain.append(address)
    # The client is the first hop, from the right, that is not one of our proxies.
    index = next((i for i, a in enumerate(chain) if not is_trusted(a, trusted)), len(chain) - 1)
    if chain:
        remote = str(chain[index])

    scheme: str | None = None
    if forwarded_proto:
        protos = list(reversed(_items(forwarded_proto)))
        bad = next((p for p in protos if p.lower() not in _SCHEMES), None)
        if bad is not None:
            raise InvalidInput(f"X-Forwarded-Proto from {peer}: {bad!r} is not http or https")
        if len(protos) == 1:
            scheme = _SCHEMES[protos[0].lower()]
        elif len(protos) == len(chain):
            scheme = _SCHEMES[protos[index].lower()]
        else:
            raise InvalidInput(
                f"X-Forwarded-Proto from {peer}: {len(protos)} values for"
                f" {len(chain)} X-Forwarded-For addresses"
            )

    host: str | None = None
    if forwarded_host:
        host = _items(forwarded_host)[-1]
        if not _HOST.fullmatch(host):
            raise InvalidInput(f"X-Forwarded-Host from {peer}: {host!r} is not a host name")

    return Forwarded(remote, scheme, host)


def _warn_once(request: web.Request, peer: str | None, trusted: Sequence[IPNetwork]) -> None:
    """A trusted proxy that sends no X-Forwarded-For makes every client look like the proxy:
    one login limit for everybody. Said once per proxy address, not once per request."""
    address = parse_address(peer) if peer else None
    if address is None or not is_trusted(address, trusted):
        return
    warned = request.config_dict[PROXIES_WARNED]
    if peer in warned or len(warned) > 100:
        return
    warned.add(str(peer))
    log.warning(
        "%s is a trusted proxy but sent no X-Forwarded-For: every client behind it looks like"
        " %s to Matinee (one login limit for all). Set the headers as contrib/ shows.",
        peer,
        peer,
    )


def setup(app: web.Application) -> None:
    app[PROXIES_WARNED] = set()


def _peer(request: web.Request) -> str | None:
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    # TCP gives (host, port[, flow, scope]); a Unix socket gives a path or "".
    if isinstance(peername, tuple | list) and peername and isinstance(peername[0], str):
        return peername[0]
    return None


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Installed inside the errors middleware (so a 400 has the API's shape) and before
    auth, whose rate limit and Secure cookies depend on the client's address and scheme."""
    trusted = request.config_dict[SETTINGS].server.trusted_proxies
    if not trusted:
        return await handler(request)
    peer = _peer(request)
    if not request.headers.getall(hdrs.X_FORWARDED_FOR, []):
        _warn_once(request, peer, trusted)
    try:
        forwarded = resolve_forwarded(
            peer,
            trusted,
            request.headers.getall(hdrs.X_FORWARDED_FOR, []),
            request.headers.getall(hdrs.X_FORWARDED_PROTO, []),
            request.headers.getall(hdrs.X_FORWARDED_HOST, []),
        )
    except InvalidInput as exc:
        log.warning("%s", exc.message)
        raise
    if forwarded == Forwarded():
        return await handler(request)
    assert peer is not None  # something was applied, so the peer is a trusted proxy
    request = request.clone(
        remote=forwarded.remote or peer,
        scheme=forwarded.scheme or request.scheme,
        host=forwarded.host or request.host,
    )
    return await handler(request)
