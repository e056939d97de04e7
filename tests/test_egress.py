"""The egress guard: local addresses pass, public ones raise before any connection."""

from __future__ import annotations

import socket

import pytest

import jlabel as jl
from jlabel.llm.egress import check, is_local_address


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "::1",
        "[::1]",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.9",
        "169.254.1.1",
        "fe80::1",
        "fd12:3456::1",
        "100.64.0.7",
        "::ffff:10.0.0.1",
    ],
)
def test_local_hosts_pass(host):
    assert check(host) == host


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "0.0.0.0", "224.0.0.1"])
def test_public_addresses_raise_with_the_escape_hatch(host, monkeypatch):
    monkeypatch.delenv("JLABEL_ALLOWED_HOSTS", raising=False)
    with pytest.raises(jl.EgressError) as info:
        check(host)
    assert repr(host) in str(info.value) and "JLABEL_ALLOWED_HOSTS" in str(info.value)


def test_hostname_resolving_to_public_address_raises(monkeypatch):
    monkeypatch.delenv("JLABEL_ALLOWED_HOSTS", raising=False)
    answers = {"gpu.lan": ["10.1.1.1"], "api.example.com": ["10.1.1.1", "93.184.216.34"]}

    def fake_getaddrinfo(name, *args, **kwargs):
        if name not in answers:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in answers[name]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert check("gpu.lan") == "gpu.lan"
    with pytest.raises(jl.EgressError, match=r"'api.example.com' \(public address 93.184.216.34\)"):
        check("api.example.com")
    with pytest.raises(jl.EgressError, match="does not resolve"):
        check("nowhere.invalid")


def test_allow_list_lets_a_named_public_host_through(monkeypatch):
    monkeypatch.setenv("JLABEL_ALLOWED_HOSTS", "models.example.org, 8.8.4.4")
    assert check("8.8.4.4") == "8.8.4.4"
    assert check("Models.Example.org") == "Models.Example.org"
    with pytest.raises(jl.EgressError):
        check("8.8.8.8")


@pytest.mark.parametrize("host", [None, "", "  "])
def test_empty_host_is_refused(host):
    with pytest.raises(jl.EgressError, match="No host"):
        check(host)


def test_is_local_address_rejects_garbage():
    with pytest.raises(ValueError):
        is_local_address("not-an-ip")


def test_ollama_public_host_refused_before_any_connection(monkeypatch):
    monkeypatch.delenv("JLABEL_ALLOWED_HOSTS", raising=False)
    opened = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: opened.append(address))
    with pytest.raises(jl.EgressError, match=r"8\.8\.8\.8"):
        jl.llm("ollama:qwen2.5:7b-instruct", host="http://8.8.8.8:11434")
    assert opened == []
