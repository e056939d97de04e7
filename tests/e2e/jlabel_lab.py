"""Drive a real JupyterLab in Debian's Chromium: used by the browser tests and benchmarks/bench_panel.py.

Follows the facts measured in ../shared/BROWSER.md (path 1).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat

CHROMIUM = Path(os.environ.get("JLABEL_CHROMIUM", "/usr/bin/chromium"))  # Debian's by default
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab server (one per test session) and helpers to drive notebooks in it."""

    def __init__(self, root: Path, *, server_config: str = "", nodelay: bool = True):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = root / "_s" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
        )
        if server_config:  # python run by the server at start (jupyter_server_config.py)
            (root / "_c").mkdir(exist_ok=True)
            (root / "_c" / "jupyter_server_config.py").write_text(server_config)
        env = dict(os.environ)
        for name, sub in (("JUPYTER_CONFIG_DIR", "_c"), ("JUPYTER_DATA_DIR", "_d"), ("JUPYTER_RUNTIME_DIR", "_r")):
            env[name] = str(root / sub)
        env["IPYTHONDIR"] = str(root / "_i")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        # the kernel must import this checkout's jlabel and the venv's widgets
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.notebooks = root / "nb"
        self.notebooks.mkdir()
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            "--port-retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.notebooks}",
            f"--LabApp.user_settings_dir={root / '_s'}", f"--LabApp.workspaces_dir={root / '_w'}",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly", "--allow-root",
        ]  # fmt: skip
        # jlabel's server extension (no Nagle delay on kernel websockets): installing jlabel enables it, so
        # it is switched on or off here explicitly
        cmd.append(f"--ServerApp.jpserver_extensions={{'jlabel.server': {bool(nodelay)}}}")
        self.log = open(root / "lab.log", "wb")  # closed in stop()
        self.process = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"JupyterLab did not start; log:\n{(root / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.3)

    def api(self, method: str, path: str):
        request = urllib.request.Request(f"{self.url}{path}?token={self.token}", method=method)
        with urllib.request.urlopen(request, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def write_notebook(self, name: str, cells: list[str]) -> str:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.notebooks / name)
        return name

    def close_sessions(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


class Notebook:
    """One open notebook in JupyterLab."""

    def __init__(self, page, lab: Lab, name: str):
        self.page, self.lab = page, lab
        page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
        page.locator(".jp-NotebookPanel").first.wait_for(timeout=60_000)
        self.wait_idle()

    def wait_idle(self, timeout: float = 60_000) -> None:
        # the status bar names the kernel and its state: "Python 3 (ipykernel) | Idle"
        status = self.page.locator(".jp-StatusBar-TextItem", has_text="| Idle")
        status.first.wait_for(timeout=timeout)

    def run_all(self) -> None:
        self.page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def run_cell(self, index: int) -> None:
        self.page.evaluate(
            """async (i) => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                nb.activeCellIndex = i;
                await window.jupyterapp.commands.execute('notebook:run-cell');
            }""",
            index,
        )

    def cells(self) -> list[dict]:
        return self.page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells
                 .map((c) => ({type: c.cell_type, source: c.getSource()}))"""
        )

    def notebook_state(self) -> dict:
        """What JupyterLab's command-mode keys would change: cells, active cell, mode, unsaved changes."""
        return self.page.evaluate(
            """() => { const panel = window.jupyterapp.shell.currentWidget; const nb = panel.content;
                 return {cells: nb.model.sharedModel.cells.map((c) => [c.cell_type, c.getSource()]),
                         active: nb.activeCellIndex, mode: nb.mode, dirty: panel.context.model.dirty}; }"""
        )

    def output_json(self, index: int, marker: str = "STATE=", timeout: float = 60_000):
        """The JSON a cell printed after ``marker``; waits until the cell has printed it."""
        cell = self.page.locator(".jp-Notebook .jp-Cell").nth(index)
        out = cell.locator(".jp-OutputArea-output", has_text=marker)
        out.first.wait_for(timeout=timeout)
        text = out.first.inner_text()
        return json.loads(text.split(marker, 1)[1].strip().splitlines()[0])

    def clear_outputs(self, index: int) -> None:
        self.page.evaluate(
            """(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.clear()""", index
        )
