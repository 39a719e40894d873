"""The SSRF guard: address classification, the allowlist, and the checks at connect time (real sockets)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest

from tests.unit.runtime.helpers import DictResolver
from tideflow.runtime.ssrf import (
    Allowlist,
    GuardedNetworkBackend,
    GuardedTransport,
    SSRFError,
    SSRFGuard,
    blocked_reason,
    send_guarded,
    system_resolver,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("127.8.9.10", "loopback address"),
        ("::1", "loopback address"),
        ("10.0.0.5", "private address"),
        ("172.16.3.4", "private address"),
        ("192.168.1.1", "private address"),
        ("fd12:3456::1", "private address"),
        ("169.254.10.10", "link-local address"),
        ("fe80::1", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("0.0.0.0", "unspecified address"),  # noqa: S104 (an address to refuse, not to bind)
        ("::", "unspecified address"),
        ("240.0.0.1", "reserved address"),
        ("255.255.255.255", "reserved address"),
        ("100.64.0.1", "carrier-grade NAT address"),
        ("100.127.255.254", "carrier-grade NAT address"),
        ("169.254.169.254", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("168.63.129.16", "cloud metadata address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("::ffff:10.0.0.5", "private address"),
        ("::ffff:169.254.169.254", "cloud metadata address"),
        ("2002:7f00:1::", "loopback address"),
        ("64:ff9b::a00:5", "private address"),
        ("192.0.0.8", "address that is not publicly routable"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_blocked_reason(address: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


def test_allowlist_entries() -> None:
    allowlist = Allowlist.parse(
        ["10.0.0.0/8", " 192.168.1.7 ", "api.internal.", "*.svc.cluster.local", "", "::1"]
    )
    assert allowlist.allows_address(ipaddress.ip_address("10.9.9.9"))
    assert allowlist.allows_address(ipaddress.ip_address("::ffff:10.1.1.1"))  # the mapped form is unwrapped
    assert allowlist.allows_address(ipaddress.ip_address("192.168.1.7"))
    assert not allowlist.allows_address(ipaddress.ip_address("192.168.1.8"))
    assert allowlist.allows_address(ipaddress.ip_address("::1"))
    assert allowlist.allows_host("API.internal")
    assert allowlist.allows_host("db.ns.svc.cluster.local")
    assert not allowlist.allows_host("svc.cluster.local")
    assert not allowlist.allows_host("evil.internal")


def test_allowlist_from_env_and_errors() -> None:
    allowlist = Allowlist.from_env({"TIDEFLOW_HTTP_ALLOWLIST": "10.0.0.0/8,hooks.internal"})
    assert allowlist.hostnames == frozenset({"hooks.internal"})
    assert Allowlist.from_env({}) == Allowlist()
    with pytest.raises(ValueError, match=r"TIDEFLOW_HTTP_ALLOWLIST: invalid network '10\.0\.0\.0/33'"):
        Allowlist.parse(["10.0.0.0/33"])


async def test_every_resolved_address_must_be_allowed() -> None:
    guard = SSRFGuard(
        resolver=DictResolver({"mixed.example": ["8.8.8.8", "10.0.0.5"], "ok.example": ["8.8.8.8"]})
    )
    with pytest.raises(SSRFError, match=r"mixed\.example \(10\.0\.0\.5\): private address"):
        await guard.resolve("mixed.example", 443)
    assert await guard.resolve("OK.example.", 443) == [ipaddress.ip_address("8.8.8.8")]


async def test_check_url() -> None:
    guard = SSRFGuard(resolver=DictResolver({}))
    with pytest.raises(SSRFError, match="scheme 'file' is not allowed"):
        await guard.check_url(httpx.URL("file:///etc/passwd"))
    with pytest.raises(SSRFError, match="cloud metadata hostname"):
        await guard.check_url(httpx.URL("http://metadata.google.internal./"))
    with pytest.raises(httpx.ConnectError, match=r"cannot resolve unknown\.example"):
        await guard.check_url(httpx.URL("http://unknown.example/"))
    allowed = SSRFGuard(Allowlist.parse(["metadata.google.internal"]), DictResolver({}))
    with pytest.raises(httpx.ConnectError):  # allowed by name, so it gets as far as resolving
        await allowed.check_url(httpx.URL("http://metadata.google.internal/"))


async def test_system_resolver_uses_the_operating_system() -> None:
    addresses = await system_resolver("localhost", 80)
    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)


async def test_unix_sockets_are_refused() -> None:
    backend = GuardedNetworkBackend(SSRFGuard())
    with pytest.raises(SSRFError, match="unix sockets are not allowed"):
        await backend.connect_unix_socket("/var/run/docker.sock")


# --- the real transport, against a server on 127.0.0.1 ---------------------------------------------------


class LocalServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records the Host header of each request."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("host:"):
                self.hosts.append(line.split(":", 1)[1].strip())
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer()
    listener = await asyncio.start_server(local.handle, "127.0.0.1", 0)
    local.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield local


async def test_the_real_transport_connects_to_an_allowlisted_address(server: LocalServer) -> None:
    guard = SSRFGuard(Allowlist.parse(["127.0.0.0/8"]), DictResolver({"service.test": ["127.0.0.1"]}))
    async with httpx.AsyncClient(transport=GuardedTransport(guard), trust_env=False) as client:
        response = await client.get(f"http://service.test:{server.port}/x")
    assert (response.status_code, response.text) == (200, "ok")
    assert server.hosts == [f"service.test:{server.port}"]  # the Host header keeps the name


async def test_the_real_transport_refuses_at_connect_time(server: LocalServer) -> None:
    guard = SSRFGuard(resolver=DictResolver({"service.test": ["127.0.0.1"]}))
    async with httpx.AsyncClient(transport=GuardedTransport(guard), trust_env=False) as client:
        with pytest.raises(SSRFError, match="loopback address"):
            await client.get(f"http://service.test:{server.port}/x")
    assert server.hosts == []


class RebindingResolver:
    """Answers a public address first and loopback afterwards, like a DNS rebinding attack."""

    def __init__(self) -> None:
        self.answers = [["93.184.216.34"], ["127.0.0.1"]]

    async def __call__(self, host: str, port: int) -> list[str]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_dns_rebinding_is_caught_by_the_connection_check(server: LocalServer) -> None:
    guard = SSRFGuard(resolver=RebindingResolver())
    async with httpx.AsyncClient(transport=GuardedTransport(guard), trust_env=False) as client:
        request = client.build_request("GET", f"http://rebind.test:{server.port}/")
        with pytest.raises(SSRFError, match=r"rebind\.test \(127\.0\.0\.1\): loopback address"):
            await send_guarded(client, request, guard)
    assert server.hosts == []


async def test_connection_failures_are_httpx_connect_errors() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: nothing listens there
    guard = SSRFGuard(Allowlist.parse(["127.0.0.1"]), DictResolver({}))
    async with httpx.AsyncClient(transport=GuardedTransport(guard), trust_env=False) as client:
        with pytest.raises(httpx.ConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_names_resolving_to_nothing_usable_and_urls_without_host() -> None:
    guard = SSRFGuard(resolver=DictResolver({"odd.example": ["not-an-address"]}))
    with pytest.raises(httpx.ConnectError, match="no addresses"):
        await guard.resolve("odd.example", 80)
    with pytest.raises(SSRFError, match="the URL has no host"):
        await guard.check_url(httpx.URL("http:///path"))


async def test_the_backend_sleeps_through_its_inner_backend() -> None:
    class Inner(httpcore.AsyncNetworkBackend):
        slept: list[float] = []

        async def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)

    inner = Inner()
    await GuardedNetworkBackend(SSRFGuard(), inner).sleep(0.5)
    assert inner.slept == [0.5]
