"""Where a ``webhook`` action may send its request: public addresses only, unless configured.

A rule's author chooses the URL, so without a check a webhook can reach the server itself
(``POST /drain``), its neighbours on loopback, cloud metadata (169.254.169.254) and the private
network. Each hop is checked *after* DNS resolution, the request goes to the address that was
checked (so a second lookup cannot answer differently), and redirects are followed by hand so
that each target is checked the same way. ``triggers.webhook_allowed_networks`` lists the
networks (CIDR) that may be reached even though they are not public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

#: Redirects a webhook follows (each one checked like the first URL).
MAX_REDIRECTS = 5

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookRefusedError(RuntimeError):
    """The URL resolves to an address webhooks may not reach."""


def parse_networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def _allowed(address: Address, networks: list[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return is_public(address) or any(address.version == net.version and address in net for net in networks)


def _describe(address: Address) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    return "a non-public address"


async def vet(url: str, networks: list[Network]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Resolve ``url``'s host and check every address it resolves to. Returns the URL to send
    to (host replaced by the checked address), the Host header and httpx extensions (SNI)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefusedError(f"webhook URL {url!r} is not an http(s) URL with a host")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise WebhookRefusedError(f"webhook host {host!r} cannot be resolved: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        if not addresses:
            raise WebhookRefusedError(f"webhook host {host!r} resolves to no address")
    for address in addresses:
        if not _allowed(address, networks):
            raise WebhookRefusedError(
                f"webhook to {host!r} refused: it resolves to {_describe(address)} ({address}); webhooks reach "
                "public addresses only unless triggers.webhook_allowed_networks lists the network"
            )
    chosen = addresses[0]
    ip_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = ip_host + (f":{parts.port}" if parts.port else "")
    target = parts._replace(netloc=netloc).geturl()
    host_header = host + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" and literal is None else {}
    return target, {"host": host_header}, extensions


async def send(
    client: Any,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    json: Any,
    timeout: float,
    networks: list[Network],
) -> Any:
    """Send the request, following up to :data:`MAX_REDIRECTS` redirects, each hop vetted."""
    for _ in range(MAX_REDIRECTS + 1):
        target, host_header, extensions = await vet(url, networks)
        response = await client.request(
            method,
            target,
            headers={**headers, **host_header},
            json=json,
            timeout=timeout,
            follow_redirects=False,
            extensions=extensions,
        )
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, json = "GET", None
            continue
        return response
    raise WebhookRefusedError(f"webhook stopped after {MAX_REDIRECTS} redirects")
