"""Real-browser fixtures: Debian's Chromium through playwright, one JupyterLab server per session.

See ../shared/BROWSER.md for the measured facts these follow. Without /usr/bin/chromium the
browser tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from jlabel_lab import CHROMIUM, CHROMIUM_ARGS, REPO, Lab, Notebook

STATIC = REPO / "js"


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        return  # the browser fixture fails with the reason instead of skipping
    reason = f"{CHROMIUM} is absent: install it with `apt-get install -y chromium` to run the browser tests"
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
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
  window.jlabelDeliver = deliver; // messages Python sent on its own (a live suggestion's push)
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

    def deliver(self) -> None:
        """Hand the page what the widget sent on its own since the last exchange (e.g. from its model thread)."""
        self.page.evaluate("(out) => window.jlabelDeliver(out)", self._drain())

    def _message(self, content):
        self.w._on_message(self.w, content, [])
        return self._drain()

    def _set_state(self, state):
        self.w.set_state(state)
        return self._drain()


@pytest.fixture
def panel_page(page):
    return lambda labeler: PanelPage(page, labeler)


# -- path 1: a real JupyterLab --------------------------------------------------------------


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if not CHROMIUM.exists() and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"{CHROMIUM} is absent")
    if not shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)):
        pytest.fail("jupyterlab is not installed in this environment: pip install -e '.[dev]'")
    server = Lab(tmp_path_factory.mktemp("lab"))
    log = (server.root / "lab.log").read_text(errors="replace")
    if "jlabel: kernel websockets send without Nagle" not in log:  # the jlabel.server extension, loaded for real
        server.stop()
        pytest.fail(f"JupyterLab did not load the jlabel.server extension; its log:\n{log[-3000:]}")
    yield server
    server.stop()


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
