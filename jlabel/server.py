"""An optional Jupyter server extension: kernel websockets without Nagle's algorithm.

jupyter_server leaves Nagle's algorithm on for the websocket between the browser and
the kernel. The kernel answers a widget message with several small frames (status busy,
the answer, status idle); Nagle holds the second until the browser acknowledges the
first, and browsers delay that acknowledgement by ~40 ms. Every round trip of the panel
(key press -> durable decision -> next record) then takes ~45 ms more than it needs
(measured by ``benchmarks/bench_panel.py``). Tornado's documented remedy is
``WebSocketHandler.set_nodelay(True)`` once the connection is open; this extension does
that for jupyter_server's kernel websockets.

Enable it for one server::

    jupyter lab --ServerApp.jpserver_extensions="{'jlabel.server': True}"

or for good: ``jupyter server extension enable jlabel.server``.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_jlabel_nodelay"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter finds this extension."""
    return [{"module": "jlabel.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Turn on TCP_NODELAY for every kernel websocket the server opens from now on."""
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    if not getattr(KernelWebsocketHandler, _PATCHED, False):
        original = KernelWebsocketHandler.open

        async def open(self, *args, **kwargs):
            self.set_nodelay(True)
            return await original(self, *args, **kwargs)

        open.__doc__ = original.__doc__
        KernelWebsocketHandler.open = open
        setattr(KernelWebsocketHandler, _PATCHED, True)
    serverapp.log.info("jlabel: kernel websockets send without Nagle's delay (TCP_NODELAY).")
