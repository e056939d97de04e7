"""The panel in a real JupyterLab in Debian's Chromium (BROWSER.md path 1).

Each test builds a Labeler in a notebook, presses keys or drags the mouse in the page,
then proves from the kernel (a cell printing the state) what df and the store hold.
"""

from __future__ import annotations

import os
import signal

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """\
import json, os
import numpy as np, pandas as pd
import jlabel as jl

task = jl.Task(["World", "Sports", "Business", "Sci/Tech"], instructions="Classify the news article by topic.")
df = pd.DataFrame({{"text": [f"Story {{i}}: {{t}}" for i, t in enumerate(["rates rise", "cup final", "new chip",
                   "summit", "merger", "rover lands", "derby", "tariffs"])]}}, index=[f"k{{i}}" for i in range(8)])
df = jl.set_suggestions(df, task, np.tile([0.1, 0.6, 0.2, 0.1], (8, 1)), model="stand-in", prompt="p0")
w = jl.Labeler(df, task, store={store!r}, annotator="ana")
w"""

STATE = """\
store = jl.Store({store!r}, task=task)
print("STATE=" + json.dumps({{
    "label": df["label"].astype(object).where(df["label"].notna(), None).tolist(),
    "source": df["label_source"].astype(object).where(df["label_source"].notna(), None).tolist(),
    "actions": store.events()["action"].tolist(),
    "records": store.events()["record"].tolist(),
    "pid": os.getpid(),
}}))"""


def _panel(nb, key: str):
    panel = nb.page.locator(".jlabel-labeler")
    expect(panel).to_have_attribute("data-key", key, timeout=60_000)
    return panel


def _press(panel, key: str, then: str) -> None:
    panel.press(key)
    expect(panel).to_have_attribute("data-key", then)


def _state(nb, index: int = 1) -> dict:
    nb.clear_outputs(index)
    nb.run_cell(index)
    return nb.output_json(index)


def test_keys_land_in_df_and_store_and_never_reach_jupyterlab(notebook):
    nb = notebook("keys.ipynb", [SETUP.format(store="keys.db"), STATE.format(store="keys.db")])
    nb.run_all()
    panel = _panel(nb, "k0")
    expect(panel.locator(".jlabel-text")).to_have_text("Story 0: rates rise")
    assert nb.output_json(1)["actions"] == []
    panel.locator(".jlabel-key").click()  # focus the panel as a person does
    before = nb.notebook_state()
    assert before["dirty"] and before["mode"] == "command"  # unsaved outputs: a leaked "s" would save them
    _press(panel, "1", "k1")  # World; the suggestion was Sports: edit
    _press(panel, "Enter", "k2")  # accept Sports
    _press(panel, "z", "k1")  # undo the accept
    _press(panel, "s", "k2")  # skip k1
    _press(panel, "ArrowLeft", "k1")
    _press(panel, "ArrowRight", "k2")
    _press(panel, "3", "k3")  # Business: edit
    for key in ("d", "d", "a", "b", "m", "ArrowDown"):  # more command-mode keys (delete, add cells...)
        panel.press(key)
    expect(panel.locator(".jlabel-progress")).to_contain_text("2 / 8")
    assert nb.notebook_state() == before, "a key pressed in the panel reached JupyterLab"
    state = _state(nb)
    assert state["label"] == ["World", None, "Business", None, None, None, None, None]
    assert state["source"] == ["llm_edited", None, "llm_edited", None, None, None, None, None]
    assert state["actions"] == ["edit", "accept", "undo", "skip", "edit"]
    assert state["records"] == ["k0", "k1", "k1", "k1", "k2"]


def test_kernel_killed_after_decisions_loses_nothing(notebook):
    nb = notebook("restart.ipynb", [SETUP.format(store="restart.db"), STATE.format(store="restart.db")])
    nb.run_all()
    panel = _panel(nb, "k0")
    pid = nb.output_json(1)["pid"]
    panel.locator(".jlabel-key").click()
    for key, then in (("2", "k1"), ("Enter", "k2"), ("4", "k3"), ("s", "k4"), ("1", "k5")):
        _press(panel, key, then)
    os.kill(pid, signal.SIGKILL)  # no goodbye: only what the store holds on disk survives
    nb.page.locator(".jp-Dialog").first.wait_for(timeout=30_000)  # "the kernel appears to have died"
    nb.page.locator(".jp-Dialog .jp-mod-accept").first.click()
    nb.clear_outputs(1)
    for _ in range(5):  # a run sent while the kernel restarts is dropped: resend until it answers
        nb.wait_idle()
        nb.run_all()
        try:
            state = nb.output_json(1, timeout=20_000)
            break
        except Exception:
            continue
    assert state["pid"] != pid
    assert state["label"] == ["Sports", "Sports", "Sci/Tech", None, "World", None, None, None]
    assert state["source"] == ["llm_accepted", "llm_accepted", "llm_edited", None, "llm_edited", None, None, None]
    assert state["actions"] == ["accept", "accept", "edit", "skip", "edit"]
    # the reopened panel starts at the first record left to label
    expect(nb.page.locator(".jlabel-labeler")).to_have_attribute("data-key", "k3", timeout=30_000)


SPANS = """\
import json
import pandas as pd
import jlabel as jl

task = jl.Task(["PER", "ORG"], kind="spans")
df = pd.DataFrame({"text": ["Yesterday Ana Lima joined Acme Corp in Lisbon."]})
w = jl.Labeler(df, task, store="spans.db", annotator="ana")
w"""

SPANS_STATE = """\
print("STATE=" + json.dumps({"label": df["label"].tolist(), "source": df["label_source"].tolist(),
                             "events": jl.Store("spans.db", task=task).events()["value"].tolist()}))"""


def _drag_over(page, word: str) -> None:
    """Select ``word`` in the record text with a real mouse drag."""
    box = page.evaluate(
        """(word) => {
            const nodes = [...document.querySelector('.jlabel-text').childNodes].filter((n) => n.nodeType === 3);
            const node = nodes.find((n) => n.data.includes(word));
            const at = node.data.indexOf(word);
            const range = document.createRange();
            range.setStart(node, at); range.setEnd(node, at + word.length);
            const rects = range.getClientRects(); const first = rects[0], last = rects[rects.length - 1];
            return {x0: first.left + 1, y0: first.top + first.height / 2, x1: last.right - 1, y1: last.top + last.height / 2};
        }""",
        word,
    )
    page.mouse.move(box["x0"], box["y0"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, box["y1"], steps=3)
    page.mouse.move(box["x1"], box["y1"], steps=3)
    page.mouse.up()


def test_span_by_mouse_selection(notebook):
    nb = notebook("spans.ipynb", [SPANS, SPANS_STATE])
    nb.run_all()
    panel = _panel(nb, "0")
    _drag_over(nb.page, "Ana Lima")
    expect(panel.locator(".jlabel-span")).to_have_text(["Ana Lima"])
    panel.press("2")  # active label ORG
    nb.page.evaluate("window.getSelection().removeAllRanges()")
    _drag_over(nb.page, "Acme Corp")
    expect(panel.locator(".jlabel-span")).to_have_count(2)
    panel.press("Enter")
    expect(panel.locator(".jlabel-empty")).to_contain_text("End of the queue")
    state = _state(nb)
    spans = [{"start": 10, "end": 18, "label": "PER"}, {"start": 26, "end": 35, "label": "ORG"}]
    assert state["label"] == [spans] and state["source"] == ["human"]
    assert state["events"] == [spans]


XSS = """\
import pandas as pd
import jlabel as jl

df = pd.DataFrame({"text": ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>"],
                   "note": ["<img src=y onerror=alert(3)>", "<b>x</b>"]})
w = jl.Labeler(df, jl.Task(["a", "b"]), annotator="ana", context=["note"])
w"""


def test_record_text_is_never_html(notebook):
    nb = notebook("xss.ipynb", [XSS])
    nb.run_all()
    panel = _panel(nb, "0")
    expect(panel.locator(".jlabel-text")).to_have_text("<img src=x onerror=alert(1)>")
    expect(panel.locator(".jlabel-context dd")).to_have_text("<img src=y onerror=alert(3)>")
    panel.locator(".jlabel-key").click()
    _press(panel, "ArrowRight", "1")
    expect(panel.locator(".jlabel-text")).to_have_text("<script>alert(2)</script>")
    assert panel.locator("img, script, b").count() == 0
    nb.page.wait_for_timeout(500)
    assert nb.page.dialogs == []
