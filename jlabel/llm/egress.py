"""Zero egress: every network endpoint is checked before a single byte is sent.

Loopback, private (RFC 1918), link-local, unique-local (fc00::/7) and carrier-grade NAT
addresses pass. A hostname passes when every address it resolves to passes, and the
connection then goes to the address that was checked (:func:`pinned_address`), never to a
later DNS answer. Anything else raises :class:`EgressError`, unless the host is named in
``JLABEL_ALLOWED_HOSTS`` (comma-separated host names or addresses). jlabel has no telemetry.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ENV = "JLABEL_ALLOWED_HOSTS"
# the networks named above, and no other: Python's is_private also holds special-purpose
# blocks that are routed to the internet (Teredo 2001::/32, benchmarking 198.18.0.0/15, ...)
LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
    )
)


class EgressError(PermissionError):
    """A connection to a public address was refused before it was made."""


def allowed_hosts() -> set[str]:
    """The hosts named in ``JLABEL_ALLOWED_HOSTS`` (lower-cased)."""
    raw = os.environ.get(ENV, "")
    return {h.strip().lower().strip("[]") for h in raw.split(",") if h.strip()}


def is_local_address(address: str) -> bool:
    """Whether an IP address is loopback, private, link-local or unique-local.

    Examples
    --------
    >>> [is_local_address(a) for a in ("127.0.0.1", "10.1.2.3", "fe80::1", "fd00::5", "8.8.8.8")]
    [True, True, True, True, False]
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in LOCAL_NETWORKS if network.version == ip.version)


def check(host: str | None) -> str:
    """Allow ``host`` or raise :class:`EgressError`; returns the host.

    Parameters
    ----------
    host
        A host name or IP address (no scheme, no port), as in a URL's host part.

    Raises
    ------
    EgressError
        The host is (or resolves to) a public address and is not in ``JLABEL_ALLOWED_HOSTS``,
        or it does not resolve at all.

    Examples
    --------
    >>> check("127.0.0.1")
    '127.0.0.1'
    >>> check("192.168.1.20")
    '192.168.1.20'
    >>> check("1.1.1.1")
    Traceback (most recent call last):
    ...
    jlabel.llm.egress.EgressError: jlabel refuses to connect to '1.1.1.1' (public address 1.1.1.1): ...
    """
    _vetted(host)
    return host


def pinned_address(host: str) -> str | None:
    """Check ``host`` and return the checked address to connect to; ``None`` when nothing needs pinning.

    A name is resolved once, here: connecting by the name would resolve it again, and a DNS answer
    that changed since the check (DNS rebinding) would send the data to an address never checked.
    ``None`` for an IP address (it cannot change) and for a host in ``JLABEL_ALLOWED_HOSTS``.

    Examples
    --------
    >>> pinned_address("localhost"), pinned_address("10.0.0.5")
    ('127.0.0.1', None)
    """
    addresses = _vetted(host)
    return addresses[0] if addresses else None


def _vetted(host: str | None) -> list[str] | None:
    """The addresses ``host`` resolved to, all checked (``None``: an IP address or an allowed host)."""
    if not isinstance(host, str) or not host.strip():
        raise EgressError(f"No host to check (got {host!r}): give a host name or address such as '127.0.0.1'.")
    name = host.strip().lower().strip("[]")
    if name in allowed_hosts():
        return None
    hint = (
        f"only loopback, private and link-local addresses are reached without asking; if this host is "
        f"yours and trusted, add it to the environment variable {ENV} (for example {ENV}={name})."
    )
    try:
        addresses = [name] if _is_ip(name) else _resolve(name)
    except OSError as error:
        raise EgressError(f"jlabel refuses to connect to {host!r}: it does not resolve ({error}); {hint}") from None
    public = [a for a in addresses if not is_local_address(a)]
    if public:
        raise EgressError(f"jlabel refuses to connect to {host!r} (public address {public[0]}): {hint}")
    return None if _is_ip(name) else addresses


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _resolve(name: str) -> list[str]:
    if name == "localhost":
        return ["127.0.0.1"]
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})
