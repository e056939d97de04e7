"""The audit trail and the offline HTML report (opened in a real headless Chromium)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pandas as pd
import pytest

import jlabel as jl
from jlabel.audit import AUDIT_COLUMNS, add_report_arguments, report_command


@pytest.fixture
def store(tmp_path, task):
    store = jl.Store(tmp_path / "labels.db", task=task, annotator="ana")
    store.record_many(
        [
            {
                "record": "r1",
                "action": "suggest",
                "suggestion": "Sports",
                "confidence": 0.8,
                "model": "smol@sha256:aa",
                "prompt": "p1",
            },
            {
                "record": "r2",
                "action": "suggest",
                "suggestion": "World",
                "confidence": 0.55,
                "model": "smol@sha256:aa",
                "prompt": "p1",
            },
        ]
    )
    store.record(
        "r1",
        "accept",
        "Sports",
        suggestion="Sports",
        confidence=0.8,
        model="smol@sha256:aa",
        prompt="p1",
        duration_ms=900,
        meta={"blind": False, "shown": True},
    )
    store.record("r2", "label", "Business", duration_ms=2500, meta={"blind": True, "shown": False})
    store.record("r2", "undo")
    store.record("r2", "label", "World", duration_ms=1200)
    store.record("r1", "label", "World", annotator="bob", duration_ms=700)
    store.record("r3", "skip", annotator="bob")
    store.record_many(
        [{"record": "r1", "action": "check", "value": "suspect", "meta": {"reason": "<script>alert(1)</script>"}}]
    )
    return store


def test_audit_lists_every_decision_with_model_and_prompt(store):
    trail = jl.audit(store)
    assert list(trail.columns) == AUDIT_COLUMNS
    assert trail["action"].tolist() == ["accept", "label", "undo", "label", "label", "skip"]
    assert trail["annotator"].tolist() == ["ana", "ana", "ana", "ana", "bob", "bob"]
    # r2's labels were made without a suggestion on them: the earlier suggest event fills it in
    r2 = trail[trail["record"].eq("r2") & trail["action"].eq("label")]
    assert r2["suggestion"].tolist() == ["World", "World"]
    assert r2["confidence"].tolist() == [0.55, 0.55]
    assert r2["model"].tolist() == ["smol@sha256:aa"] * 2 and r2["prompt"].tolist() == ["p1"] * 2
    assert trail["undone"].tolist() == [False, True, False, False, False, False]
    assert trail["current"].tolist() == [True, False, False, True, True, True]
    assert trail["blind"].tolist()[:2] == [False, True]
    assert pd.isna(trail["blind"].iloc[3])
    assert trail["ts"].is_monotonic_increasing and str(trail["ts"].dt.tz) == "UTC"


def test_audit_of_an_empty_store_and_bad_input(tmp_path, task):
    assert jl.audit(jl.Store(tmp_path / "empty.db", task=task)).empty
    with pytest.raises(TypeError, match=r"audit takes a jl\.Store, got DataFrame"):
        jl.audit(pd.DataFrame())


def test_report_is_self_contained(store, tmp_path):
    path = jl.report(store, tmp_path / "report.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 7  # the seven dashboard charts, inline
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # check details are escaped text
    # nothing to fetch: no src= or href= at all, and URLs only as SVG namespaces
    assert not re.search(r"\b(src|href)\s*=", page)
    assert set(re.findall(r"https?://[^\s\"')]+", page)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }
    assert "ana" in page and "bob" in page and "Cohen" in page
    # the store by its file name: a report sent by e-mail does not show the folders it came from
    assert Path(store.path).name in page and str(Path(store.path).parent) not in page


def test_report_of_an_empty_store(tmp_path, task):
    page = jl.report(jl.Store(tmp_path / "empty.db", task=task), tmp_path / "r.html").read_text()
    assert "No labeled records yet." in page and "<svg" not in page


def test_report_command(store, tmp_path, capsys):
    store.close()
    args = add_report_arguments(argparse.ArgumentParser()).parse_args(
        [str(tmp_path / "labels.db"), str(tmp_path / "out.html"), "--title", "Team <A>"]
    )
    assert report_command(args) == 0
    assert "<h1>Team &lt;A&gt;</h1>" in (tmp_path / "out.html").read_text()
    with pytest.raises(SystemExit, match="No store at"):
        report_command(argparse.Namespace(store=str(tmp_path / "none.db"), output="x.html", title="t"))


CHROMIUM = Path(os.environ.get("JLABEL_CHROMIUM", "/usr/bin/chromium"))  # Debian's by default
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.mark.browser
def test_report_opens_offline_in_chromium(store, tmp_path):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():  # as in tests/e2e: skip on a laptop, fail in CI
        message = f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    path = jl.report(store, tmp_path / "report.html")
    url = path.resolve().as_uri()
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            assert page.title() == "jlabel quality report"
            assert page.locator("svg").count() == 7
            # the charts drew: each SVG has marks with a real size on screen
            sizes = page.eval_on_selector_all("figure svg", "els => els.map(e => e.getBoundingClientRect().width)")
            assert len(sizes) == 7 and min(sizes) > 100
            assert page.locator("table").count() >= 3
            assert page.get_by_text("<script>alert(1)</script>").count() == 1  # shown as text, not run
        finally:
            browser.close()
    assert requests == [url], f"the report made requests beyond its own file: {requests}"


def test_report_shows_checks_given_to_it(store, tmp_path):
    checks = pd.DataFrame(
        {"label": ["World"], "suggested": ["Sports"], "reason": ["the model is 0.97 sure of Sports"]}, index=["r1"]
    )
    page = jl.report(store, tmp_path / "r.html", checks=checks).read_text()
    assert "the model is 0.97 sure of Sports" in page
    with pytest.raises(TypeError, match=r"checks must be the DataFrame jl\.check returned"):
        jl.report(store, tmp_path / "r.html", checks=[1])


def test_report_counts_blind_labels_apart_and_says_when_no_check_ran(tmp_path, task):
    from jlabel.audit import _annotators

    store = jl.Store(tmp_path / "l.db", task=task, annotator="ana")
    label = task.labels[0]
    for i in range(4):  # blind: the suggestion was journalled but hidden, so the label cannot accept it
        store.record(f"b{i}", "label", label, suggestion=label, confidence=0.9, meta={"blind": True, "shown": False})
    store.record("s0", "edit", task.labels[1], suggestion=label, confidence=0.9, meta={"blind": False, "shown": True})
    store.record("s0", "undo")
    store.record("s0", "edit", task.labels[1], suggestion=label, confidence=0.9, meta={"blind": False, "shown": True})
    row = _annotators(jl.audit(store)).iloc[0]
    assert row["with_suggestion"] == 1 and row["accept_rate"] == 0.0  # was 4 of 5 "accepted"
    page = jl.report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "6 decisions and 1 undos" in page  # was "7 decisions": the undo counted as one
    assert "No check was journalled" in page  # was "None.", read as "nothing suspect"


def test_report_creates_a_missing_folder(store, tmp_path):
    path = jl.report(store, tmp_path / "reports" / "2024" / "q.html")  # was FileNotFoundError after the charts
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_command_refuses_a_file_that_is_not_a_store(tmp_path):
    import sqlite3

    empty = tmp_path / "copied.db"
    empty.touch()
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    other = tmp_path / "other.db"  # SQLite, but not jlabel's: a table of its own, or none at all
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    conn.close()
    blank = tmp_path / "blank.db"
    conn = sqlite3.connect(blank)
    conn.execute("PRAGMA user_version = 7")  # a header, no table
    conn.close()
    for path in (empty, text, other, blank):
        before = path.read_bytes()
        args = argparse.Namespace(store=str(path), output=str(tmp_path / "r.html"), title="t")
        # a 0-byte file became an empty store, and the command said it wrote a report
        with pytest.raises(jl.StoreError, match=r"is not (a jlabel store|a SQLite file)"):
            report_command(args)
        assert path.read_bytes() == before, path
        assert not (tmp_path / "r.html").exists()


def test_report_caps_the_checks_and_shows_their_details_as_columns(store, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["jlabel.audit"], "REPORT_ROWS", 3)  # jlabel.audit is the function
    store.record_many(
        [
            {
                "record": f"s{i}",
                "action": "check",
                "value": "suspect",
                "suggestion": "World",
                "confidence": 0.9,
                "meta": {"label": "Sports", "score": i / 10, "reason": f"reason number {i}"},
            }
            for i in range(8)
        ]
    )
    page = jl.report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    checks = page.split("<h2>Checks</h2>")[1].split("<h2>")[0]
    assert "3 of 9" in checks  # 8 suspects and r1's, the top 3 by score
    assert [f"reason number {i}" in checks for i in range(8)] == [False] * 5 + [True] * 3
    for column in ("reason", "score", "label"):
        assert f"<th>{column}</th>" in checks
    assert "&#x27;reason&#x27;" not in checks and "'reason'" not in checks  # no dict repr
    # checks given to it are capped the same way, by score
    given = pd.DataFrame(
        {"label": "Sports", "score": [0.1, 0.9, 0.5, 0.7, 0.3], "reason": [f"why {i}" for i in range(5)]},
        index=[f"k{i}" for i in range(5)],
    )
    page = jl.report(store, tmp_path / "r.html", checks=given).read_text(encoding="utf-8")
    checks = page.split("<h2>Checks</h2>")[1].split("<h2>")[0]
    assert "3 of 5" in checks
    assert [f"why {i}" in checks for i in range(5)] == [False, True, True, True, False]
