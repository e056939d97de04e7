"""Real-browser fixtures: Debian's Chromium through playwright, one JupyterLab server per session.

See ../shared/BROWSER.md for the measured facts these follow. Without /usr/bin/chromium the
browser tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "jlabel" / "static"
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


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        return  # the browser fixture fails with the reason instead of skipping
    reason = f"{CHROMIUM} is absent: install it with `apt-get install -y chromium` to run the browser tests"
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"CI=true but {CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.dialogs = []  # any alert() is a failed XSS test
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()


# -- path 2: the panel alone, bridged to a real Python Labeler --------------------------------

_BRIDGE = """
async ([src, css, state]) => {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const listeners = new Map();
  const emit = (name, ...args) => (listeners.get(name) || []).slice().forEach((cb) => cb(...args));
  let dirty = {};
  const deliver = (out) => {
    for (const m of out) {
      if (m.method === "custom") emit("msg:custom", m.content, []);
      else if (m.method === "update") {
        for (const [k, v] of Object.entries(m.state)) { state[k] = v; emit(`change:${k}`); }
      }
    }
  };
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; dirty[k] = v; emit(`change:${k}`); },
    on: (name, cb) => listeners.set(name, [...(listeners.get(name) || []), cb]),
    off: (name, cb) => listeners.set(name, (listeners.get(name) || []).filter((x) => x !== cb)),
    save_changes: () => { const d = dirty; dirty = {}; window.pySetState(d).then(deliver); },
    send: (content) => { window.pyMessage(content).then(deliver); },
  };
  window.jlabelListeners = listeners;
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  widget.initialize({ model });
  const host = document.createElement("div");
  document.body.append(host);
  window.jlabelCleanup = await widget.render({ model, el: host });
}
"""


class PanelPage:
    """A page showing one Labeler's front end, whose model is the real Python widget."""

    def __init__(self, page, labeler):
        self.page, self.w = page, labeler
        self.out: list[dict] = []
        labeler._send = lambda msg, buffers=None: self.out.append(msg)
        page.route("http://jlabel.test/", lambda route: route.fulfill(body="<!doctype html><body></body>"))
        page.goto("http://jlabel.test/")
        if getattr(page, "jlabel_panel", None) is None:  # a page binds its functions once
            page.expose_function("pyMessage", lambda content: page.jlabel_panel._message(content))
            page.expose_function("pySetState", lambda state: page.jlabel_panel._set_state(state))
        page.jlabel_panel = self
        state = json.loads(json.dumps({k: v for k, v in labeler.get_state().items() if k not in ("_esm", "_css")}))
        src = (STATIC / "labeler.js").read_text()
        css = (STATIC / "labeler.css").read_text()
        page.evaluate(_BRIDGE, [src, css, state])
        self.root = page.locator(".jlabel-labeler")

    def _drain(self) -> list[dict]:
        out, self.out[:] = list(self.out), []
        return json.loads(json.dumps(out))

    def _message(self, content):
        self.w._on_message(self.w, content, [])
        return self._drain()

    def _set_state(self, state):
        self.w.set_state(state)
        return self._drain()


@pytest.fixture
def panel_page(page):
    return lambda labeler: PanelPage(page, labeler)


# -- path 1: a real JupyterLab ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab server (one per test session) and helpers to drive notebooks in it."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = root / "_s" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
        )
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


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if not CHROMIUM.exists() and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"{CHROMIUM} is absent")
    if not shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)):
        pytest.fail("jupyterlab is not installed in this environment: pip install -e '.[dev]'")
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


class Notebook:
    """One open notebook in JupyterLab."""

    def __init__(self, page, lab: Lab, name: str):
        from playwright.sync_api import expect

        self.page, self.lab, self.expect = page, lab, expect
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


@pytest.fixture
def notebook(page, lab):
    opened = []

    def open_notebook(name: str, cells: list[str]) -> Notebook:
        lab.write_notebook(name, cells)
        nb = Notebook(page, lab, name)
        opened.append(nb)
        return nb

    yield open_notebook
    lab.close_sessions()
