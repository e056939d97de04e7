"""The panel alone in Chromium (BROWSER.md path 2), its model bridged to a real Python Labeler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

import jlabel as jl

pytestmark = pytest.mark.browser

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture
def frame():
    task = jl.Task(LABELS, instructions="Classify the news article by topic.")
    df = pd.DataFrame({"text": [f"Story number {i}." for i in range(8)]}, index=[f"k{i}" for i in range(8)])
    p = np.tile([0.1, 0.6, 0.2, 0.1], (8, 1))
    return jl.set_suggestions(df, task, p, model="stand-in", prompt="p"), task


def _key(panel, key: str, expect_key: str | None = None) -> None:
    panel.root.press(key)
    if expect_key is not None:
        expect(panel.root).to_have_attribute("data-key", expect_key)


def test_keys_drive_decisions_into_df_and_store(panel_page, frame, tmp_path):
    df, task = frame
    w = jl.Labeler(df, task, store=tmp_path / "l.db", annotator="ana")
    panel = panel_page(w)
    expect(panel.root.locator(".jlabel-text")).to_have_text("Story number 0.")
    expect(panel.root.locator(".jlabel-suggestion")).to_contain_text("Sports")
    expect(panel.root.locator(".jlabel-progress")).to_contain_text("0 / 8")
    _key(panel, "1", "k1")  # World over suggestion Sports: edit
    _key(panel, "Enter", "k2")  # accept Sports
    _key(panel, "x")  # reject Sports ...
    expect(panel.root.locator(".jlabel-suggestion")).to_contain_text("rejected")
    _key(panel, "3", "k3")  # ... the right one is Business
    _key(panel, "s", "k4")
    _key(panel, "z", "k3")  # undo the skip
    _key(panel, "Backspace", "k2")  # undo the reject
    _key(panel, "ArrowRight", "k3")
    _key(panel, "ArrowLeft", "k2")
    _key(panel, "4", "k3")
    expect(panel.root.locator(".jlabel-progress")).to_contain_text("3 / 8")
    assert df["label"].iloc[:3].tolist() == ["World", "Sports", "Sci/Tech"]
    assert pd.isna(df["label"].iloc[3])
    assert df["label_source"].iloc[:3].tolist() == ["llm_edited", "llm_accepted", "llm_edited"]
    events = w.store.events()
    assert events["action"].tolist() == ["edit", "accept", "reject", "skip", "undo", "undo", "edit"]
    decisions = events[events["action"] != "undo"]
    assert (decisions["duration_ms"] >= 0).all() and decisions["duration_ms"].notna().all()
    assert w.store.state()["label"].to_dict() == {"k0": "World", "k1": "Sports", "k2": "Sci/Tech", "k3": None}
    assert not panel.page.console_errors


def test_keys_pressed_faster_than_answers_are_all_kept_in_order(panel_page, frame):
    df, task = frame
    w = jl.Labeler(df, task, annotator="ana")
    panel = panel_page(w)
    expect(panel.root).to_have_attribute("data-key", "k0")
    panel.root.evaluate(
        """(root) => { for (const key of ["1", "2", "3", "ArrowLeft", "4", "s", "Enter"])
                          root.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true})); }"""
    )
    expect(panel.root).to_have_attribute("data-key", "k5")
    expect(panel.root).to_have_attribute("data-busy", "false")
    assert df["label"].iloc[:5].fillna("-").tolist() == ["World", "Sports", "Sci/Tech", "-", "Sports"]
    assert w.store.events()["action"].tolist() == ["edit", "accept", "edit", "edit", "skip", "accept"]


def test_text_is_text_never_html(panel_page, page):
    task = jl.Task(LABELS)
    evil = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", "<b>bold</b> & done"]
    df = pd.DataFrame({"text": evil, "src": ["<img src=y onerror=alert(3)>"] * 3})
    panel = panel_page(jl.Labeler(df, task, annotator="ana", context=["src"]))
    for i, text in enumerate(evil):
        expect(panel.root.locator(".jlabel-text")).to_have_text(text)
        expect(panel.root.locator(".jlabel-context dd")).to_have_text("<img src=y onerror=alert(3)>")
        assert panel.root.locator("img, script, b").count() == 0
        panel.root.press("ArrowRight")
        expect(panel.root).to_have_attribute("data-position", str(i + 1))
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('img').length") == 0


def test_more_than_nine_labels_through_filter_and_buttons(panel_page):
    labels = [f"topic-{i:02d}" for i in range(12)]
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    w = jl.Labeler(df, jl.Task(labels), annotator="ana")
    panel = panel_page(w)
    expect(panel.root.locator(".jlabel-label")).to_have_count(12)
    panel.root.press("/")
    panel.root.locator(".jlabel-filter").fill("11")
    expect(panel.root.locator(".jlabel-label")).to_have_count(1)
    panel.root.locator(".jlabel-filter").press("Enter")
    expect(panel.root).to_have_attribute("data-position", "1")
    panel.root.locator(".jlabel-label", has_text="topic-10").click()
    expect(panel.root).to_have_attribute("data-position", "2")
    assert df["label"].iloc[:2].tolist() == ["topic-11", "topic-10"]


def test_multi_toggle_and_spans_by_selection(panel_page, page):
    task = jl.Task(["urgent", "billing", "bug"], kind="multi")
    df = pd.DataFrame({"text": ["pay now", "crash"]})
    panel = panel_page(jl.Labeler(df, task, annotator="ana"))
    for key in ("1", "3", "1", "2"):
        panel.root.press(key)
    expect(panel.root.locator(".jlabel-label.jlabel-on")).to_have_count(2)
    panel.root.press("Enter")
    expect(panel.root).to_have_attribute("data-position", "1")
    assert df["label"].iloc[0] == ["billing", "bug"]

    spans = jl.Task(["PER", "ORG"], kind="spans")
    sdf = pd.DataFrame({"text": ["Café owner Ana joined Acme."]})
    page.goto("about:blank")
    panel = panel_page(jl.Labeler(sdf, spans, annotator="ana"))
    select = """([a, b]) => {  // select characters a..b of the text node, as a mouse drag does
        const node = document.querySelector('.jlabel-text').firstChild;
        const range = document.createRange(); range.setStart(node, a); range.setEnd(node, b);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        document.querySelector('.jlabel-text').dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    }"""
    page.evaluate(select, [11, 15])  # "Ana " (the trailing space is trimmed)
    expect(panel.root.locator(".jlabel-span")).to_have_text(["Ana"])
    panel.root.press("2")
    page.evaluate(
        """() => {  // a new selection in the text node after the span
        const text = document.querySelector('.jlabel-text'); const node = text.lastChild;
        const at = node.data.indexOf('Acme');
        const range = document.createRange(); range.setStart(node, at); range.setEnd(node, at + 4);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        text.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    }"""
    )
    expect(panel.root.locator(".jlabel-span")).to_have_count(2)
    page.evaluate(select, [0, 4])
    panel.root.locator(".jlabel-span", has_text="Ana").click()  # click removes
    expect(panel.root.locator(".jlabel-span")).to_have_text(["Café", "Acme"])
    panel.root.press("Enter")
    expect(panel.root).to_have_attribute("data-position", "1")
    # offsets count code points, as Python does
    assert sdf["label"].iloc[0] == [{"start": 0, "end": 4, "label": "ORG"}, {"start": 22, "end": 26, "label": "ORG"}]
    assert sdf["text"].iloc[0][22:26] == "Acme"


def test_empty_queue_and_cleanup_removes_listeners(panel_page, page):
    done = pd.DataFrame({"text": ["a"], "label": ["World"]})
    panel = panel_page(jl.Labeler(done, jl.Task(LABELS), annotator="ana"))
    expect(panel.root.locator(".jlabel-empty")).to_contain_text("Every record is labeled")
    assert page.evaluate("[...window.jlabelListeners.values()].reduce((n, l) => n + l.length, 0)") > 0
    page.evaluate("window.jlabelCleanup()")
    assert page.evaluate("[...window.jlabelListeners.values()].reduce((n, l) => n + l.length, 0)") == 0
    assert page.locator(".jlabel-labeler").count() == 0


def test_the_suggestion_says_where_it_came_from(panel_page, frame):
    df, task = frame
    df = jl.set_suggestions(df, task, jl.probs(df, task), model="stand-in", prompt="p", source="combined")
    panel = panel_page(jl.Labeler(df, task, annotator="ana"))
    expect(panel.root.locator(".jlabel-source")).to_have_text("model + your labels")
    assert not panel.page.console_errors
