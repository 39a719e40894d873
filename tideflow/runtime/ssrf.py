"""Server-side request forgery guard for the HTTP nodes (design invariant 5).

A workflow author chooses the URLs its ``http_request`` nodes call, and the runtime pod sits inside the
cluster network, so without a guard a workflow could read the cloud metadata service, the Kubernetes
API or any internal Service. :class:`SSRFGuard` refuses every address that is not publicly routable:
loopback, private (RFC 1918, IPv6 unique-local), link-local, multicast, unspecified, reserved,
carrier-grade NAT and the cloud metadata endpoints, unless the installation's allowlist
(``TIDEFLOW_HTTP_ALLOWLIST``: comma-separated CIDRs, addresses, hostnames and ``*.suffix`` wildcards)
permits them. IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that
IPv4 address. A host is refused if *any* of its resolved addresses is refused, so an attacker cannot
mix a public and an internal address and hope for a fallback.

Where the check happens matters more than what it checks. Checking a hostname and then letting the
HTTP library resolve it again when it connects is open to DNS rebinding: a name with a zero TTL
answers a public address to the check and ``127.0.0.1`` to the connection. Two options avoid that:
rewrite the URL to the checked IP (keeping the Host header and the TLS SNI name), or resolve inside
the connection layer and connect to the address just checked. This module does the latter:
:class:`GuardedNetworkBackend` is an httpcore network backend whose ``connect_tcp`` resolves, checks
every address and connects to a checked one, and :class:`GuardedTransport` is an httpx transport over
an httpcore connection pool that uses it. The check and the connection therefore share one
resolution; TLS still verifies the certificate against the hostname (httpcore sends the URL's host
as SNI), and pooled connections stay keyed by hostname, which URL rewriting would have broken
(connections to one IP for two hostnames would share a pool slot and a TLS session). The client is
built without proxies (``trust_env=False``): through a proxy the guard would only see the proxy.

:func:`send_guarded` follows redirects by hand, a bounded number of times, and checks the URL of
every hop before sending it (scheme, blocked hostnames, resolved addresses). With the real transport
that pre-flight check is repeated by the connection itself; with any other transport (tests use
``httpx.MockTransport``) it is the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

import httpcore
import httpx

__all__ = [
    "ALLOWLIST_ENV",
    "Allowlist",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "IPAddress",
    "Resolver",
    "SSRFError",
    "SSRFGuard",
    "blocked_reason",
    "send_guarded",
    "system_resolver",
]

ALLOWLIST_ENV: Final = "TIDEFLOW_HTTP_ALLOWLIST"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves ``(host, port)`` to IP address strings; injectable so tests never use DNS."""

METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure wire server (a public address used as a host-internal endpoint)
    )
)
METADATA_HOSTNAMES: Final = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_CARRIER_GRADE_NAT: Final = ipaddress.ip_network("100.64.0.0/10")
_IETF_PROTOCOL_ASSIGNMENTS: Final = ipaddress.ip_network("192.0.0.0/24")
_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class SSRFError(Exception):
    """A request the guard refused: the scheme, the hostname or one of its addresses is not allowed."""

    def __init__(self, host: str, reason: str, address: IPAddress | None = None) -> None:
        self.host = host
        self.reason = reason
        self.address = address
        where = f"{host} ({address})" if address is not None and str(address) != host else host
        super().__init__(
            f"refused to connect to {where}: {reason}; an administrator can allow it in {ALLOWLIST_ENV}"
        )


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), or the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if any(address in network for network in _NAT64):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def blocked_reason(address: IPAddress) -> str | None:
    """Why the guard refuses ``address`` (before any allowlist), or ``None`` if it is public."""
    address = _embedded_ipv4(address)
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback address"),
        (address.is_link_local, "link-local address"),
        (address.is_multicast, "multicast address"),
        (address in _CARRIER_GRADE_NAT, "carrier-grade NAT address"),
        (address.is_reserved, "reserved address"),
        (address.is_private, "private address"),
        (
            not address.is_global or address in _IETF_PROTOCOL_ASSIGNMENTS,
            "address that is not publicly routable",
        ),
    )
    return next((reason for blocked, reason in checks if blocked), None)


def _normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _parse_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class Allowlist:
    """Networks and hostnames an installation allows even though they are internal."""

    networks: tuple[IPNetwork, ...] = ()
    hostnames: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    """From ``*.example.internal`` entries: ``.example.internal`` (subdomains only)."""

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Build from entries like ``10.0.0.0/8``, ``10.1.2.3``, ``api.internal`` or ``*.svc.cluster.local``.

        Raises ``ValueError`` naming the entry when a CIDR or address is malformed.
        """
        networks: list[IPNetwork] = []
        hostnames: set[str] = set()
        suffixes: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "/" in entry or _parse_address(_normalize_host(entry)) is not None:
                try:
                    networks.append(ipaddress.ip_network(_normalize_host(entry), strict=False))
                except ValueError as exc:
                    raise ValueError(f"{ALLOWLIST_ENV}: invalid network {entry!r}: {exc}") from None
            elif entry.startswith("*."):
                suffixes.append("." + _normalize_host(entry[2:]))
            else:
                hostnames.add(_normalize_host(entry))
        return cls(tuple(networks), frozenset(hostnames), tuple(suffixes))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Allowlist:
        value = (os.environ if environ is None else environ).get(ALLOWLIST_ENV, "")
        return cls.parse(value.split(","))

    def allows_host(self, host: str) -> bool:
        host = _normalize_host(host)
        return host in self.hostnames or any(host.endswith(suffix) for suffix in self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        candidates = {address, _embedded_ipv4(address)}
        return any(candidate in network for candidate in candidates for network in self.networks)


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (``getaddrinfo``), as the connection would."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class SSRFGuard:
    """Resolves hosts and refuses the ones whose addresses are not allowed."""

    def __init__(self, allowlist: Allowlist | None = None, resolver: Resolver | None = None) -> None:
        self.allowlist = allowlist or Allowlist()
        self._resolver = resolver or system_resolver

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SSRFGuard:
        return cls(Allowlist.from_env(environ))

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """All addresses of ``host``, every one checked; raise :class:`SSRFError` if any is refused.

        A name that does not resolve raises ``httpx.ConnectError``.
        """
        name = _normalize_host(host)
        host_allowed = self.allowlist.allows_host(name)
        if name in METADATA_HOSTNAMES and not host_allowed:
            raise SSRFError(name, "cloud metadata hostname")
        literal = _parse_address(name)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                resolved = await self._resolver(name, port)
            except OSError as exc:
                raise httpx.ConnectError(f"cannot resolve {name}: {exc}") from None
            addresses = [address for address in map(_parse_address, resolved) if address is not None]
            if not addresses:
                raise httpx.ConnectError(f"cannot resolve {name}: no addresses")
        if not host_allowed:
            for address in addresses:
                reason = blocked_reason(address)
                if reason is not None and not self.allowlist.allows_address(address):
                    raise SSRFError(name, reason, address)
        return addresses

    async def check_url(self, url: httpx.URL) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host resolves to a refused address."""
        if url.scheme not in _DEFAULT_PORTS:
            raise SSRFError(str(url)[:200], f"scheme {url.scheme!r} is not allowed (only http and https)")
        if not url.host:
            raise SSRFError(str(url)[:200], "the URL has no host")
        await self.resolve(url.host, url.port or _DEFAULT_PORTS[url.scheme])


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the guard has just checked."""

    def __init__(self, guard: SSRFGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (the httpcore backend interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        options = list(socket_options) if socket_options is not None else None
        failures: list[str] = []
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failures.append(f"{address}: {exc}")
        raise httpcore.ConnectError(f"cannot connect to {host}:{port}: {'; '.join(failures)}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (the httpcore backend interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SSRFError(path, "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_ERROR_MAP: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Re-raise httpcore's exceptions as the httpx ones callers expect."""
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _ERROR_MAP:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc), request=request) from exc
        raise


class _ClosableStream(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: _ClosableStream, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections go through :class:`GuardedNetworkBackend`."""

    def __init__(
        self,
        guard: SSRFGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
        )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=cast(AsyncIterable[bytes], request.stream),
            extensions=request.extensions,
        )
        with _httpx_errors(request):
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            # The async pool always returns an async stream with aclose() (httpx relies on it too).
            stream=_ResponseStream(cast(_ClosableStream, response.stream), request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


async def send_guarded(
    client: httpx.AsyncClient,
    request: httpx.Request,
    guard: SSRFGuard,
    *,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    credential_headers: Sequence[str] = (),
) -> httpx.Response:
    """Send ``request``, following redirects by hand with every hop's URL checked by ``guard``.

    The response is streamed: the caller reads and closes it. ``credential_headers`` are dropped when
    a redirect leaves the original origin (httpx itself only drops ``Authorization``).
    """
    origin = _origin(request.url)
    redirects = 0
    while True:
        await guard.check_url(request.url)
        response = await client.send(request, stream=True, follow_redirects=False)
        next_request = response.next_request
        if next_request is None or not follow_redirects:
            return response
        await response.aclose()
        if redirects == max_redirects:
            raise httpx.TooManyRedirects(f"more than {max_redirects} redirects", request=request)
        redirects += 1
        if _origin(next_request.url) != origin:
            for header in credential_headers:
                next_request.headers.pop(header, None)
        request = next_request
