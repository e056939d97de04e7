"""The audit trail of a store and its self-contained HTML quality report."""

from __future__ import annotations

import argparse
import datetime as dt
import html
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from . import dashboard as dash
from .quality import CHECK_DETAILS
from .store import DECISIONS, Store, StoreError, _pop_undos

AUDIT_COLUMNS = [
    "event",
    "ts",
    "record",
    "annotator",
    "action",
    "value",
    "suggestion",
    "confidence",
    "model",
    "prompt",
    "duration_ms",
    "blind",
    "undone",
    "current",
]
REPORT_ROWS = 500


def audit(store: Store) -> pd.DataFrame:
    """Every decision in the store: who, when, what, and what the model suggested.

    Parameters
    ----------
    store
        The journal.

    Returns
    -------
    pandas.DataFrame
        One row per decision or undo event, oldest first: ``event`` (id), ``ts`` (UTC),
        ``record``, ``annotator``, ``action``, ``value``, ``suggestion``, ``confidence``,
        ``model`` (model id with its file digest), ``prompt`` (prompt hash),
        ``duration_ms``, ``blind`` (the panel hid the suggestion; NA if not recorded),
        ``undone`` (a later undo took this decision back) and ``current`` (it is the
        record's current decision for that annotator). A decision recorded without its
        suggestion takes the record's latest earlier ``suggest`` event.

    Examples
    --------
    >>> import tempfile, os
    >>> from jlabel import Task
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "l.db"), task=Task(["a", "b"]), annotator="ana")
    >>> _ = store.record("r1", "accept", "a", suggestion="a", confidence=0.9, model="m@sha256:1", prompt="p1")
    >>> _ = store.record("r1", "undo")
    >>> audit(store)[["action", "undone", "current"]].values.tolist()
    [['accept', True, False], ['undo', False, False]]
    """
    if not isinstance(store, Store):
        raise TypeError(f"audit takes a jl.Store, got {type(store).__name__}; open one with jl.Store(path).")
    events = store.events()
    decisions = events[events["action"].isin([*DECISIONS, "undo"])].reset_index(drop=True)
    if decisions.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in AUDIT_COLUMNS})
    out = decisions.rename(columns={"id": "event"}).copy()
    suggest = events[events["action"].eq("suggest")]
    if not suggest.empty:
        # the latest suggest event before each decision on the same record
        earlier = pd.merge_asof(
            out[["event", "record"]].sort_values("event"),
            suggest[["id", "record", "suggestion", "confidence", "model", "prompt"]]
            .rename(columns={"id": "event"})
            .sort_values("event"),
            on="event",
            by="record",
            direction="backward",
        ).set_index("event")
        missing = out["suggestion"].isna() & out["action"].ne("undo")
        for column in ("suggestion", "confidence", "model", "prompt"):
            out.loc[missing, column] = earlier[column].reindex(out.loc[missing, "event"]).to_numpy()
    out["blind"] = pd.array([m.get("blind") if isinstance(m, dict) else None for m in out["meta"]], dtype="boolean")
    out["undone"], out["current"] = _undone_and_current(out)
    out["confidence"] = pd.to_numeric(out["confidence"]).astype("float64")
    return out[AUDIT_COLUMNS]


def _undone_and_current(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    group, _ = pd.factorize(events["record"].astype(str) + "\x1f" + events["annotator"].fillna("").astype(str))
    is_undo = events["action"].eq("undo").to_numpy()
    in_undo_group = np.isin(group, group[is_undo])
    alive = ~is_undo & ~in_undo_group
    if in_undo_group.any():
        positions = np.flatnonzero(in_undo_group)
        alive[_pop_undos(group[positions], is_undo[positions], positions)] = True
    undone = ~is_undo & ~alive
    current = np.zeros(len(events), dtype=bool)
    survivors = np.flatnonzero(alive)
    if len(survivors):
        last = pd.Series(survivors).groupby(group[survivors]).max().to_numpy()
        current[last] = True
    return undone, current


# -- the HTML report ---------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f4f4f4; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
.note { color: #666; font-size: 0.85rem; }
"""


def _table(frame: pd.DataFrame, *, caption: str | None = None) -> str:
    if frame.empty:
        return '<p class="note">None.</p>'
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(4)
    out = shown.to_html(index=False, escape=True, na_rep="", border=0)
    if caption:
        out = f'<p class="note">{html.escape(caption)}</p>' + out
    return out


def _svg(chart) -> str:
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(chart.to_dict())
    return svg[svg.index("<svg") :]  # drop the XML declaration: the SVG goes inline


def _checks(store: Store, checks: pd.DataFrame | None) -> pd.DataFrame | None:
    """The latest suspects, or None when no check was given or journalled (not "nothing suspect")."""
    if checks is not None:
        if not isinstance(checks, pd.DataFrame):
            raise TypeError(f"checks must be the DataFrame jl.check returned, got {type(checks).__name__}.")
        return checks.reset_index()
    events = store.events(actions=["check"])
    if events.empty:
        return None
    latest = events.drop_duplicates("record", keep="last")
    latest = latest[latest["value"].eq("suspect")]  # a label fixed and checked again is "ok" now
    found = pd.DataFrame(
        {
            "record": latest["record"].to_numpy(dtype=object),
            "checked_at": latest["ts"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object),
            "result": latest["value"].astype(str).to_numpy(dtype=object),
            "suggestion": latest["suggestion"].to_numpy(dtype=object),
            "confidence": latest["confidence"].to_numpy(dtype=np.float64),
        }
    )
    # the why (jl.check journals label, score, reason and explanation) as columns, not a dict repr
    why = pd.DataFrame.from_records([m if isinstance(m, dict) else {} for m in latest["meta"]], index=found.index)
    known = [c for c in CHECK_DETAILS if c in why.columns]
    for column in known + sorted(set(why.columns) - set(known) - set(found.columns), key=str):
        values = why[column]
        if column == "score":
            values = pd.to_numeric(values, errors="coerce")
        elif values.map(lambda v: isinstance(v, (dict, list))).any():
            values = values.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        found[str(column)] = values
    return found


def _top_checks(found: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The ``REPORT_ROWS`` suspects with the highest score, and the caption that says so."""
    if "score" in found.columns:
        score = pd.to_numeric(found["score"], errors="coerce")
        found = found.iloc[np.argsort(-score.fillna(-np.inf).to_numpy(), kind="stable")]
    shown = found.head(REPORT_ROWS)
    order = ", highest score first" if "score" in found.columns else ""
    caption = f"Labels flagged as likely wrong: {len(shown)} of {len(found)}{order}."
    if len(shown) < len(found):
        caption += " jl.check (or the store's check events) has all."
    return shown, caption


def _annotators(trail: pd.DataFrame) -> pd.DataFrame:
    made = trail[trail["action"].isin(DECISIONS) & ~trail["undone"]]
    if made.empty:
        return pd.DataFrame()
    # a blind decision's suggestion was journalled but hidden from the annotator: not accepted or edited
    hidden = made["blind"].fillna(False).to_numpy(dtype=bool)
    with_suggestion = made["suggestion"].notna() & made["value"].notna() & ~hidden
    same = made["value"].astype(str).eq(made["suggestion"].astype(str)) & with_suggestion
    frame = pd.DataFrame(
        {
            "annotator": made["annotator"].fillna("unknown"),
            "decision": 1,
            "skip": made["action"].eq("skip").astype(int),
            "with_suggestion": with_suggestion.astype(int),
            "same_as_suggestion": same.astype(int),
            "duration_s": pd.to_numeric(made["duration_ms"]).astype("float64") / 1000,
        }
    )
    out = frame.groupby("annotator").agg(
        decisions=("decision", "sum"),
        skips=("skip", "sum"),
        with_suggestion=("with_suggestion", "sum"),
        same_as_suggestion=("same_as_suggestion", "sum"),
        median_seconds=("duration_s", "median"),
    )
    out["accept_rate"] = out["same_as_suggestion"] / out["with_suggestion"].replace(0, np.nan)
    return out.reset_index()


def report(
    store: Store,
    path: str | os.PathLike,
    *,
    checks: pd.DataFrame | None = None,
    title: str = "jlabel quality report",
) -> Path:
    """Write a self-contained HTML quality report of ``store`` to ``path``.

    The report holds the dashboard's charts as inline SVG, agreement and per-annotator
    tables, check results and the latest decisions of the audit trail. It has no script
    and loads nothing: it opens offline, in a browser or as an e-mail attachment.

    Parameters
    ----------
    store
        The journal to report on.
    path
        The HTML file to write (overwritten).
    checks
        The frame :func:`jl.check` returned; by default the store's ``check`` events.
    title
        The report's title.

    Returns
    -------
    Path
        The file written.
    """
    if not isinstance(store, Store):
        raise TypeError(f"report takes a jl.Store, got {type(store).__name__}; open one with jl.Store(path).")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # before the work, as the other writers do
    trail = audit(store)
    decisions = dash.prepare(store)
    task = store.task
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Store {html.escape(Path(store.path).name)}, generated {now}.</p>',  # not the folders
    ]
    if task is not None:
        parts.append(
            f"<p>Task <code>{html.escape(task.id)}</code>: {html.escape(task.kind)} labels "
            f"{html.escape(', '.join(task.labels))}.</p>"
        )
    labeled = decisions.table["record"].nunique() if not decisions.empty else 0
    annotators = decisions.table["annotator"].nunique() if not decisions.empty else 0
    made = int(trail["action"].ne("undo").sum()) if len(trail) else 0
    undos = len(trail) - made
    parts.append(f"<p>{made} decisions and {undos} undos; {labeled} records labeled by {annotators} annotator(s).</p>")
    parts.append("<h2>Dashboard</h2>")
    if decisions.empty:
        parts.append('<p class="note">No labeled records yet.</p>')
    else:
        figures = [f"<figure>{_svg(chart)}</figure>" for chart in dash.charts(decisions, linked=False).values()]
        parts.append(f'<div class="charts">{"".join(figures)}</div>')
    parts.append("<h2>Agreement</h2>")
    agreement = dash.agreement_table(decisions)
    pair = pd.DataFrame(np.sort(agreement[["rater_a", "rater_b"]].to_numpy(dtype=str), axis=1))
    agreement = agreement[~pair.duplicated().to_numpy()]  # each pair once
    parts.append(
        _table(
            agreement,
            caption="Pairs of raters (the model included) with records in common: share of equal labels and Cohen's kappa.",
        )
    )
    parts.append("<h2>Annotators</h2>")
    parts.append(_table(_annotators(trail)))
    parts.append("<h2>Checks</h2>")
    found = _checks(store, checks)
    if found is None:
        parts.append(
            '<p class="note">No check was journalled: run jl.check(df, task, store=store), '
            "or pass checks=jl.check(df, task) to jl.report.</p>"
        )
    elif found.empty:
        parts.append('<p class="note">Checked: nothing suspect.</p>')
    else:
        shown, caption = _top_checks(found)
        parts.append(_table(shown, caption=caption))
    parts.append("<h2>Audit trail</h2>")
    latest = trail.tail(REPORT_ROWS).iloc[::-1].copy()
    latest["ts"] = pd.to_datetime(latest["ts"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    parts.append(
        _table(latest, caption=f"The latest {len(latest)} of {len(trail)} events, newest first (jl.audit has all).")
    )
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def add_report_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``jlabel report`` options to ``parser``: the store and the HTML file."""
    parser.add_argument("store", help="the store file (SQLite)")
    parser.add_argument("output", help="the HTML file to write")
    parser.add_argument("--title", default="jlabel quality report", help="the report's title")
    return parser


def _refuse_other_files(path: Path) -> None:
    """Raise unless ``path`` is a jlabel store, looking without writing: Store would make one of an empty file."""
    with open(path, "rb") as f:
        header = f.read(16)
    if header and header != b"SQLite format 3\x00":
        return  # Store refuses it, untouched, before it writes
    tables: set[str] = set()
    if header:
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            return  # Store says what is wrong with it
    if not {"events", "jlabel_meta"} <= tables:
        what = "the file is empty" if not header else "a SQLite database without jlabel's tables"
        raise StoreError(
            f"{path} is not a jlabel store ({what}); it was left untouched. Give the store file that "
            f"jl.Store, the Labeler or jl.check(..., store=...) wrote."
        )


def report_command(args: argparse.Namespace) -> int:
    """Run ``jlabel report``: write the store's HTML quality report. Returns 0."""
    if not Path(args.store).is_file():
        raise SystemExit(f"No store at {args.store}.")
    _refuse_other_files(Path(args.store))
    with Store(args.store) as store:
        path = report(store, args.output, title=args.title)
    print(f"wrote {path}")
    return 0
