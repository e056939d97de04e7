"""The egress guard: local addresses pass, public ones raise before any connection."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

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


@pytest.mark.parametrize("host", ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "198.18.0.1", "240.0.0.1", "255.255.255.255"])
def test_special_purpose_blocks_python_calls_private_are_not_local(host):
    # Teredo (2001::/32) is routed to the internet through relays; none of these is a local network
    assert not is_local_address(host)


class _LanServer(BaseHTTPRequestHandler):
    """An "Ollama" on the LAN that lists one model and redirects every POST to a public address."""

    hosts: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hosts.append(self.headers["Host"])
        body = {"models": [{"name": "m:latest", "model": "m:latest", "digest": "ab" * 32, "size": 1}]}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", "http://8.8.8.8:11434/api/chat")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def lan(monkeypatch):
    """The LAN server, and every address a socket connects to (anything but loopback is refused)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LanServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connected = []
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        ip = socket.getaddrinfo(address[0], address[1])[0][4][0]
        connected.append(ip)
        if ip != "127.0.0.1":
            raise ConnectionRefusedError(f"the test refuses {ip}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.delenv("JLABEL_ALLOWED_HOSTS", raising=False)
    _LanServer.hosts = []
    yield server.server_address[1], connected
    server.shutdown()
    server.server_close()


def test_ollama_follows_no_redirect_and_no_proxy_from_the_environment(lan, monkeypatch):
    from jlabel.prompts import default_prompt

    port, connected = lan
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://8.8.8.8:3128")  # a proxy would get every record
    llm = jl.llm("ollama:m", host=f"http://127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match="a redirect: jlabel follows none"):
        llm.score_one(default_prompt(jl.Task(["World", "Sports"])), "a record that must stay here")
    assert connected and set(connected) == {"127.0.0.1"}  # was: the proxy, or 8.8.8.8 after the redirect


def test_ollama_connects_to_the_address_it_checked_not_a_later_dns_answer(lan, monkeypatch):
    port, connected = lan
    answers = iter(["127.0.0.1"])  # the first answer is checked; every later one is public (DNS rebinding)
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "ollama.lan":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "8.8.8.8"), port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    llm = jl.llm("ollama:m", host=f"http://ollama.lan:{port}")
    assert llm.digest and set(connected) == {"127.0.0.1"}
    assert _LanServer.hosts and set(_LanServer.hosts) == {f"ollama.lan:{port}"}  # the name still in Host


def test_ollama_over_https_on_a_private_ca_keeps_the_name_for_tls(lan, monkeypatch, tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the private CA's certificate")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ollama.lan"),
            *("-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")),
            *("-addext", "subjectAltName=DNS:ollama.lan"),
        ],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LanServer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
            if host == "ollama.lan"
            else real(host, *a, **k)
        ),
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # how httpx users trust a private CA
    try:
        llm = jl.llm("ollama:m", host=f"https://ollama.lan:{port}")  # pinned to 127.0.0.1, TLS checks the name
        assert llm.digest and _LanServer.hosts[-1] == f"ollama.lan:{port}"
    finally:
        server.shutdown()
        server.server_close()
