"""jlabel.server: the Jupyter server extension that turns Nagle's algorithm off on kernel websockets."""

from __future__ import annotations

import asyncio
import logging

from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

from jlabel import server


class FakeApp:
    log = logging.getLogger("fake-server")


class FakeHandler:
    def __init__(self):
        self.calls = []

    def set_nodelay(self, value):
        self.calls.append(("nodelay", value))


def test_extension_sets_nodelay_before_the_kernel_connection_opens(monkeypatch, caplog):
    async def opened(self, kernel_id):
        self.calls.append(("open", kernel_id))
        return "connected"

    monkeypatch.setattr(KernelWebsocketHandler, "open", opened)
    monkeypatch.setattr(KernelWebsocketHandler, "_jlabel_nodelay", False, raising=False)  # undone after the test
    assert server._jupyter_server_extension_points() == [{"module": "jlabel.server"}]
    with caplog.at_level(logging.INFO, logger="fake-server"):
        server._load_jupyter_server_extension(FakeApp())
        server._load_jupyter_server_extension(FakeApp())  # loading twice wraps once
    handler = FakeHandler()
    assert asyncio.run(KernelWebsocketHandler.open(handler, "k1")) == "connected"
    assert handler.calls == [("nodelay", True), ("open", "k1")]
    assert "TCP_NODELAY" in caplog.text
