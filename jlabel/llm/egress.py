"""Zero egress: every network endpoint is checked before a single byte is sent.

Loopback, private (RFC 1918), link-local, unique-local (fc00::/7) and carrier-grade NAT
addresses pass. A hostname passes when every address it resolves to passes. Anything else
raises :class:`EgressError`, unless the host is named in ``JLABEL_ALLOWED_HOSTS``
(comma-separated host names or addresses). jlabel has no telemetry.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ENV = "JLABEL_ALLOWED_HOSTS"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


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
    if ip.is_unspecified or ip.is_multicast:
        return False
    return bool(ip.is_loopback or ip.is_link_local or ip.is_private or (ip.version == 4 and ip in _CGNAT))


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
    if not isinstance(host, str) or not host.strip():
        raise EgressError(f"No host to check (got {host!r}): give a host name or address such as '127.0.0.1'.")
    name = host.strip().lower().strip("[]")
    if name in allowed_hosts():
        return host
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
    return host


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
