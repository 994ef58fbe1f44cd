"""Where the gateway may send requests on a merchant's behalf (webhook targets).

A webhook URL is chosen by a merchant, and the gateway sends signed requests to it: without
these checks a merchant could make the gateway call itself, a peer's operations port, a cloud
metadata service or anything else on the bank's private network. So:

- the URL is parsed strictly (scheme, host, port 1-65535, no credentials, no fragment);
- a host written as a number in any notation the resolver accepts (``2130706433``, ``0x7f.1``,
  ``0177.0.0.1``, ``127.1``) is refused unless it is a canonical dotted quad or an IPv6 literal:
  such spellings exist to slip past filters;
- every address the host stands for must be public unicast. Loopback, private, link-local
  (169.254.169.254), shared, multicast, reserved and unspecified addresses are refused in IPv4
  and IPv6, including IPv4-mapped, 6to4, Teredo and NAT64 forms of them, unless the bank's
  allow-list (``webhook_allowed_targets``: addresses, networks or host names) names them;
- the gateway's own listen address and port are refused even when allow-listed.

The check runs when a merchant registers the URL and again when each delivery is sent, on the
addresses the name resolves to at that moment; the connection then goes to the checked address,
so a name that changes its answer in between (DNS rebinding) cannot redirect it. Deliveries do
not follow redirects.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

MAX_URL_LENGTH = 2048
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
# What inet_aton would read as an IPv4 address: one to four parts of decimal, octal or hex.
_NUMERIC_HOST = re.compile(r"(0[xX][0-9A-Fa-f]*|[0-9]+)(\.(0[xX][0-9A-Fa-f]*|[0-9]+)){0,3}\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")

# Not covered by ipaddress's is_private / is_global flags in every Python version.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (shared address space)
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
)


class EgressRefused(ValueError):
    """The URL or the address it leads to is not a place the gateway sends requests to."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to send as Host and in the request line."""

    scheme: str
    host: str  # the host as written (for the Host header and TLS server name)
    port: int
    path: str  # path and query, at least "/"
    address: IPAddress | None = None  # the checked address to connect to (set when resolved)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class EgressPolicy:
    """Which targets are allowed; ``own`` is the gateway's own (host, port)."""

    allowed: tuple[str, ...] = ()
    own: tuple[str, int] | None = None
    resolver: Resolver | None = None  # the system resolver unless a test gives its own

    def check_url(self, url: str) -> Target:
        """Refuse a URL that is malformed or names a forbidden address literally (no DNS)."""
        target = parse_url(url)
        literal = _literal_address(target.host)
        if literal is not None:
            self._check_address(target, literal)
        elif not self._host_allowed(target.host):
            name = target.host.lower().rstrip(".")
            if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES):
                raise EgressRefused("url must not point at a local or internal host name")
        return target

    def resolve(self, url: str) -> Target:
        """Check the URL, resolve its host and check every address; the first one is pinned."""
        target = self.check_url(url)
        literal = _literal_address(target.host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = (self.resolver or system_resolver)(target.host, target.port)
            except OSError as error:
                raise EgressRefused(f"the host {target.host} does not resolve") from error
            if not addresses:
                raise EgressRefused(f"the host {target.host} does not resolve")
        for address in addresses:
            self._check_address(target, address)
        return Target(target.scheme, target.host, target.port, target.path, addresses[0])

    def _check_address(self, target: Target, address: IPAddress) -> None:
        if self._is_own(address, target.port):
            raise EgressRefused("url must not point at this gateway")
        if self._host_allowed(target.host) or self._address_allowed(address):
            return
        reason = forbidden_reason(address)
        if reason is not None:
            raise EgressRefused(f"url must not point at {reason}")

    def _is_own(self, address: IPAddress, port: int) -> bool:
        if self.own is None or port != self.own[1]:
            return False
        own_host = self.own[0]
        own = _literal_address(own_host)
        if own is None:
            return own_host.lower() in _LOCAL_NAMES and _unwrap(address).is_loopback
        own, address = _unwrap(own), _unwrap(address)
        # A gateway bound to 0.0.0.0 or :: answers on every local address.
        return address == own or (own.is_unspecified and (address.is_loopback or address.is_unspecified))

    def _host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return any(entry.lower().rstrip(".") == name for entry in self.allowed if _network(entry) is None)

    def _address_allowed(self, address: IPAddress) -> bool:
        plain = _unwrap(address)
        for entry in self.allowed:
            network = _network(entry)
            if network is not None and plain.version == network.version and plain in network:
                return True
        return False


def parse_url(url: str) -> Target:
    """Strict http(s) URL parsing; every refusal says what is wrong."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise EgressRefused(f"url must be at most {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(ch in url for ch in " \t\r\n\\") or not url.isprintable():
        raise EgressRefused("url must be ASCII without spaces, backslashes or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as error:  # for example an unclosed or malformed [IPv6] host
        raise EgressRefused("url is malformed") from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise EgressRefused("url must be an absolute http or https URL")
    if "@" in parts.netloc:
        raise EgressRefused("url must not carry credentials")
    if parts.fragment or url.endswith("#"):
        raise EgressRefused("url must not have a fragment")
    host, port = _host_and_port(parts, scheme)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port, path)


def _host_and_port(parts: SplitResult, scheme: str) -> tuple[str, int]:
    netloc = parts.netloc
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise EgressRefused("url has a malformed IPv6 host")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if "%" in host:
            raise EgressRefused("url must not carry an IPv6 zone")
        try:
            ipaddress.IPv6Address(host)
        except ValueError as error:
            raise EgressRefused("url has a malformed IPv6 host") from error
        if rest and not rest.startswith(":"):
            raise EgressRefused("url has a malformed host")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = netloc.partition(":")
        port_text = port_text_ if sep else None
        if not host or not _HOST_NAME.fullmatch(host):
            raise EgressRefused("url has a malformed host name")
        if _NUMERIC_HOST.fullmatch(host) and not _DOTTED_QUAD.fullmatch(host.rstrip(".")):
            raise EgressRefused("url host must be a name or a canonical dotted-quad address")
        host = host.rstrip(".") if _DOTTED_QUAD.fullmatch(host.rstrip(".")) else host
    if port_text is None or port_text == "":
        if port_text == "":
            raise EgressRefused("url has an empty port")
        return host, 443 if scheme == "https" else 80
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise EgressRefused("url port must be a number from 1 to 65535")
    return host, int(port_text)


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the gateway must not connect to ``address`` (None: a public unicast address)."""
    for candidate in _embedded(address):
        if candidate.is_unspecified:
            return "the unspecified address"
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_private or any(candidate in net for net in _EXTRA_BLOCKED if net.version == candidate.version):
            return "a private address"
        if candidate.is_reserved or not candidate.is_global:
            return "a reserved address"
    return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    """Every IPv4 address an IPv6 form carries (mapped, compatible, 6to4, Teredo, NAT64), then the address.

    The carried addresses come first so that a refusal names what the address really reaches.
    """
    found: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        packed = address.packed
        if packed[:12] == bytes(12) and packed[12:] != bytes(4):  # deprecated IPv4-compatible ::a.b.c.d
            found.append(ipaddress.IPv4Address(packed[12:]))
        if address in ipaddress.ip_network("64:ff9b::/96"):
            found.append(ipaddress.IPv4Address(packed[12:]))
    found.append(address)
    return found


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
    except ValueError:
        return None


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host`` (IPv4 and IPv6, TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    return addresses


def validate_allow_list(entries: Iterable[str]) -> tuple[str, ...]:
    """The configured allow-list, each entry an address, a network (CIDR) or a host name."""
    cleaned = []
    for entry in entries:
        value = entry.strip()
        if not value:
            continue
        if _network(value) is None and not _HOST_NAME.fullmatch(value):
            raise ValueError(f"webhook_allowed_targets entry {value!r} is neither an address, a network nor a host")
        cleaned.append(value)
    return tuple(cleaned)
