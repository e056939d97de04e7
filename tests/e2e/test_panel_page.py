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


def test_label_descriptions_are_the_buttons_tooltips_whatever_the_names(panel_page):
    # names of JavaScript's Object members must not pick up its functions as their tooltip
    task = jl.Task({"constructor": "", "toString": "", "World": "politics, governments, wars"})
    panel = panel_page(jl.Labeler(pd.DataFrame({"text": ["a"]}), task, annotator="ana"))
    buttons = panel.root.locator(".jlabel-label")
    expect(buttons).to_have_count(3)
    titles = [buttons.nth(i).get_attribute("title") for i in range(3)]
    assert titles[:2] in ([None, None], ["", ""]) and titles[2] == "politics, governments, wars"


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


def test_a_double_click_an_empty_filter_and_escape_from_a_button_decide_nothing_unseen(panel_page, page):
    labels = [f"topic-{i:02d}" for i in range(12)]
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    w = jl.Labeler(df, jl.Task(labels), annotator="ana")
    panel = panel_page(w)
    panel.root.locator(".jlabel-label", has_text="topic-03").dblclick()
    expect(panel.root).to_have_attribute("data-position", "1")
    page.wait_for_timeout(300)  # a second decision would have arrived by now
    assert df["label"].iloc[0] == "topic-03" and pd.isna(df["label"].iloc[1])  # was: record 1 labeled too, unseen
    panel.root.press("/")
    panel.root.locator(".jlabel-filter").press("Enter")  # nothing typed: nothing chosen
    expect(panel.root.locator(".jlabel-label")).to_have_count(12)
    page.wait_for_timeout(300)
    assert pd.isna(df["label"].iloc[1]) and w.position == 1  # was: the first label, never chosen
    panel.root.locator(".jlabel-label", has_text="topic-05").focus()
    page.keyboard.press("Escape")  # the keys go back to the page, also from a focused button
    assert page.evaluate("document.activeElement.closest('.jlabel-labeler') === null")
    page.keyboard.press("2")
    page.wait_for_timeout(300)
    assert pd.isna(df["label"].iloc[1])


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


def _press_at_once(panel, keys) -> None:
    """Keys pressed faster than the kernel answers: all dispatched before any answer comes back."""
    panel.root.evaluate(
        """(root, keys) => { for (const key of keys)
                                root.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true})); }""",
        keys,
    )


def _settled(panel, key: str) -> None:
    expect(panel.root).to_have_attribute("data-key", key)
    expect(panel.root).to_have_attribute("data-busy", "false")


def test_confirm_pressed_ahead_sends_the_next_records_own_selection(panel_page, page):
    task = jl.Task(["urgent", "billing", "bug"], kind="multi")
    df = jl.set_suggestions(
        pd.DataFrame({"text": ["pay now", "crash", "ok"]}),
        task,
        np.array([[0.9, 0.1, 0.8], [0.1, 0.9, 0.1], [0.1] * 3]),
        model="m",
    )
    panel = panel_page(jl.Labeler(df, task, annotator="ana"))
    _settled(panel, "0")
    _press_at_once(panel, ["Enter", "Enter"])
    _settled(panel, "2")
    assert df["label"].iloc[:2].tolist() == [["urgent", "bug"], ["billing"]]
    assert df["label_source"].iloc[:2].tolist() == ["llm_accepted", "llm_accepted"]

    spans = jl.Task(["PER", "ORG"], kind="spans")
    sdf = jl.frame.ensure_columns(
        pd.DataFrame({"text": ["Ana Lopez joined Acme Corporation.", "Bo left.", "-"]}), spans
    )
    suggested = [[{"start": 0, "end": 9, "label": "PER"}, {"start": 17, "end": 33, "label": "ORG"}]]
    sdf["llm_label"] = pd.Series([*suggested, [{"start": 0, "end": 2, "label": "PER"}], None], dtype=object)
    page.goto("about:blank")
    panel = panel_page(jl.Labeler(sdf, spans, annotator="ana"))
    _settled(panel, "0")
    _press_at_once(panel, ["Enter", "Enter"])
    _settled(panel, "2")
    assert sdf["label"].iloc[1] == [{"start": 0, "end": 2, "label": "PER"}]
    assert sdf["label_source"].iloc[:2].tolist() == ["llm_accepted", "llm_accepted"]
    assert not panel.root.locator(".jlabel-message").is_visible()


class _SlowMultiModel:
    """A multi-label model whose answers wait for ``release``."""

    id = "slow@sha256:0"

    def __init__(self):
        import threading

        self.release = threading.Event()

    def score(self, task, texts, *, examples=()):
        self.release.wait(10)
        return np.array([[0.9, 0.1, 0.8]])


def test_a_suggestion_that_comes_late_is_preselected_unless_the_user_chose(panel_page, page):
    task = jl.Task(["urgent", "billing", "bug"], kind="multi")
    df = pd.DataFrame({"text": ["pay now", "crash"]})
    model = _SlowMultiModel()
    w = jl.Labeler(df, task, annotator="ana", llm=model)
    panel = panel_page(w)
    expect(panel.root.locator(".jlabel-suggestion")).to_contain_text("suggestion coming")
    model.release.set()
    assert _wait(lambda: len(panel.out) >= 2)  # both records' pushes
    panel.deliver()
    expect(panel.root.locator(".jlabel-label.jlabel-on")).to_have_text(["1 urgent", "3 bug"])
    panel.root.press("Enter")
    _settled(panel, "1")
    assert df["label"].iloc[0] == ["urgent", "bug"] and df["label_source"].iloc[0] == "llm_accepted"

    # a choice made before the suggestion came is the user's: the suggestion does not replace it
    df = pd.DataFrame({"text": ["pay now"]})
    model = _SlowMultiModel()
    page.goto("about:blank")
    panel = panel_page(jl.Labeler(df, task, annotator="ana", llm=model))
    panel.root.press("2")
    model.release.set()
    assert _wait(lambda: len(panel.out) >= 1)
    panel.deliver()
    expect(panel.root.locator(".jlabel-suggestion")).to_contain_text("urgent, bug")
    expect(panel.root.locator(".jlabel-label.jlabel-on")).to_have_count(1)
    panel.root.press("Enter")
    expect(panel.root).to_have_attribute("data-position", "1")
    assert df["label"].iloc[0] == ["billing"] and df["label_source"].iloc[0] == "llm_edited"


def _wait(condition, timeout=10.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_enter_and_space_on_a_tab_focused_button_press_that_button(panel_page, page, frame):
    df, task = frame
    w = jl.Labeler(df, task, annotator="ana")
    panel = panel_page(w)
    panel.root.focus()
    page.keyboard.press("Tab")
    world = panel.root.locator(".jlabel-label", has_text="World")
    expect(world).to_be_focused()
    page.keyboard.press("Enter")  # World, not the root's Enter (accept Sports)
    _settled(panel, "k1")
    panel.root.locator(".jlabel-action[data-action='skip']").focus()
    page.keyboard.press(" ")
    _settled(panel, "k2")
    assert df["label"].iloc[0] == "World" and pd.isna(df["label"].iloc[1])
    assert w.store.events()["action"].tolist() == ["edit", "skip"]


def test_toggles_pressed_ahead_of_the_answer_are_kept(panel_page):
    task = jl.Task(["urgent", "billing", "bug"], kind="multi")
    df = pd.DataFrame({"text": ["pay now", "crash", "ok"]})
    panel = panel_page(jl.Labeler(df, task, annotator="ana"))
    _settled(panel, "0")
    _press_at_once(panel, ["1", "Enter", "2", "3"])  # 2 and 3 are for record 1, pressed before it is shown
    _settled(panel, "1")
    expect(panel.root.locator(".jlabel-label.jlabel-on")).to_have_count(2)
    panel.root.press("Enter")
    _settled(panel, "2")
    assert df["label"].iloc[:2].tolist() == [["urgent"], ["billing", "bug"]]


def test_reject_pressed_ahead_of_the_answer_is_kept(panel_page, frame):
    df, task = frame
    w = jl.Labeler(df, task, annotator="ana")
    panel = panel_page(w)
    _settled(panel, "k0")
    _press_at_once(panel, ["1", "x"])  # x rejects k1's suggestion
    _settled(panel, "k1")
    expect(panel.root.locator(".jlabel-suggestion")).to_contain_text("rejected")
    panel.root.press("3")
    _settled(panel, "k2")
    assert w.store.events()["action"].tolist() == ["edit", "reject"]
    assert df["label"].iloc[1] == "Business"


def _fail_fetches(panel, reaching: int, times: int) -> list:
    """The kernel answers an error to the first ``times`` fetches of records at ``reaching`` or later."""
    from conftest import PanelPage

    failures = []

    def failing(content):
        if content["type"] == "fetch" and content["start"] + content["count"] > reaching and len(failures) < times:
            failures.append(content["start"])
            return [{"method": "custom", "content": {"type": "error", "id": content["id"], "error": "boom"}}]
        return PanelPage._message(panel, content)

    panel._message = failing
    return failures


def test_a_failed_fetch_keeps_the_keys_waiting_their_turn(panel_page, frame):
    df, task = frame
    panel = panel_page(jl.Labeler(df, task, annotator="ana"))
    failures = _fail_fetches(panel, 6, 2)
    _settled(panel, "k0")
    _press_at_once(panel, ["1", "1", "1"])  # fetches of records 6-7 fail while two decisions wait their turn
    _settled(panel, "k3")
    assert df["label"].iloc[:3].tolist() == ["World"] * 3 and len(failures) == 2


def test_a_record_that_failed_to_load_is_asked_for_again(panel_page, frame):
    df, task = frame
    panel = panel_page(jl.Labeler(df, task, annotator="ana"))
    failures = _fail_fetches(panel, 6, 1)
    _settled(panel, "k0")
    panel.root.press("ArrowRight")
    expect(panel.root.locator(".jlabel-message")).to_contain_text("Could not load records: boom")
    for key in ("k2", "k3", "k4", "k5", "k6", "k7"):
        panel.root.press("ArrowRight")
        _settled(panel, key)
    expect(panel.root.locator(".jlabel-text")).to_have_text("Story number 7.")
    expect(panel.root.locator(".jlabel-message")).to_be_hidden()
    assert failures == [6]
