"""The panel in a real JupyterLab: key press to next record, and kernel memory, 1,000,000 rows vs 10.

Runs a JupyterLab server and Debian's Chromium (as the browser tests do), opens a notebook
with a Labeler on a 10-row frame and one on a 1,000,000-row frame, presses 200 keys in
each and prints, for both, the time from the key press to the next record on the page
(p50, p95; measured in the page: keydown to the DOM holding the next record) and the
kernel's memory growth (RSS after the decisions minus before the Labeler opened, and from the
20th decision on), against a baseline (an empty widget message and its echo) and with
ratios big/small measured in this one run. It runs all of that twice: on JupyterLab with
jlabel's server extension (``jlabel.server``: TCP_NODELAY on kernel websockets; installing
jlabel enables it) turned off, and on. With --screenshot PATH it also saves a screenshot of the panel in
JupyterLab (docs/panel.png for the README).

    python benchmarks/bench_panel.py [--rows 1000000] [--decisions 200] [--server both|plain|nodelay]
                                     [--screenshot docs/panel.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from jlabel_lab import CHROMIUM, CHROMIUM_ARGS, Lab, Notebook  # noqa: E402

SETUP = """\
import json, time, gc, psutil
import numpy as np, pandas as pd
import jlabel as jl

task = jl.Task(["World", "Sports", "Business", "Sci/Tech"], instructions="Classify the news article by topic.")
n = {rows}
df = pd.DataFrame({{"text": "Record " + pd.Series(np.arange(n)).astype(str) + ": a short news story about rates."}})
rng = np.random.default_rng(0)
df = jl.set_suggestions(df, task, rng.dirichlet(np.ones(4), size=n), model="bench", prompt="p")
gc.collect()
rss0 = psutil.Process().memory_info().rss
t0 = time.perf_counter()
w = jl.Labeler(df, task, store="bench-{rows}.db", annotator="bench")
open_s = time.perf_counter() - t0
rss_open = psutil.Process().memory_info().rss
rss = []  # kernel RSS after each decision
kernel_ms = []  # time the kernel spends on each decision: the store, the frame, the next records
def _timed(method):
    def timed(*args, **kwargs):
        t = time.perf_counter()
        out = method(*args, **kwargs)
        kernel_ms.append((method.__name__, 1000 * (time.perf_counter() - t)))
        if method.__name__ == "_decide":
            rss.append(psutil.Process().memory_info().rss - rss0)
        return out
    return timed
w._decide, w._records = _timed(w._decide), _timed(w._records)
w"""

REPORT = """\
gc.collect()
decide_ms = [ms for name, ms in kernel_ms if name == "_decide"]
records_ms = [ms for name, ms in kernel_ms if name == "_records"]
print("STATE=" + json.dumps({"open_s": open_s, "kernel_decide_ms": float(np.median(decide_ms)),
    "kernel_records_ms": float(np.median(records_ms)), "rss_open": rss_open - rss0,
    "rss_done": psutil.Process().memory_info().rss - rss0, "rss_20": rss[19] if len(rss) > 19 else None, "rss_last": rss[-1] if rss else None, "labeled": int(df["label"].notna().sum()),
    "events": len(jl.Store("bench-{rows}.db", task=task).events())}))"""

# the baseline: an empty anywidget message and its echo, in the same JupyterLab and kernel
ECHO = """\
import anywidget

class Echo(anywidget.AnyWidget):
    _esm = '''
    export default { render({ model, el }) {
      const out = document.createElement("div"); out.className = "echo"; el.append(out);
      const times = []; let t0 = 0;
      const go = () => { t0 = performance.now(); model.send({}); };
      const back = () => {
        times.push(performance.now() - t0);
        if (times.length < {n}) go(); else out.textContent = "ECHO=" + JSON.stringify(times);
      };
      model.on("msg:custom", back);
      setTimeout(go, 300);
      return () => model.off("msg:custom", back);
    } }'''

    def __init__(self):
        super().__init__()
        self.on_msg(lambda _w, content, _b: self.send(content))

Echo()"""


# keydown to the DOM holding another record (a re-render of the same record does not count)
TIMER = """() => {
    const root = document.querySelector('.jlabel-labeler');
    window.jlabelTimes = []; let t0 = null, from = null;
    root.addEventListener('keydown', () => { t0 = performance.now(); from = root.dataset.key; }, true);
    new MutationObserver(() => {
        if (t0 !== null && root.dataset.key !== from) { window.jlabelTimes.push(performance.now() - t0); t0 = null; }
    }).observe(root, {attributes: true, attributeFilter: ['data-key']});
}"""

SHOT = """\
import numpy as np, pandas as pd
import jlabel as jl

task = jl.Task({"World": "politics, diplomacy, conflicts", "Sports": "games, players, results",
                "Business": "companies, markets, the economy", "Sci/Tech": "science, technology, computing"},
               instructions="Classify the news article by topic.")
df = pd.DataFrame({
    "text": ["Port workers end a nine-day strike after the shipping group agrees to a 6% raise and new safety rules; "
             "container traffic is expected to return to normal by the weekend.",
             "Underdogs hold the champions to a draw in a rain-soaked derby.",
             "Researchers grow a battery electrode that heals its own cracks."],
    "source": ["Harbour Gazette", "Evening Sport", "Lab Notes"],
})
df = jl.set_suggestions(df, task, np.array([[0.08, 0.02, 0.81, 0.09], [0.03, 0.9, 0.04, 0.03], [0.05, 0.02, 0.08, 0.85]]),
                        model="smollm2-135m-instruct-q4_1")
w = jl.Labeler(df, task, store="demo.db", annotator="ana", context=["source"])
w"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_one(page, lab: Lab, rows: int, decisions: int) -> dict:
    from playwright.sync_api import expect

    name = lab.write_notebook(f"bench-{rows}.ipynb", [SETUP.format(rows=rows), REPORT.replace("{rows}", str(rows))])
    nb = Notebook(page, lab, name)
    nb.run_all()
    panel = page.locator(".jlabel-labeler")
    expect(panel).to_have_attribute("data-key", "0", timeout=300_000)
    nb.output_json(1, timeout=300_000)
    page.evaluate(TIMER)
    panel.locator(".jlabel-key").click()
    keys = ["1", "Enter", "2", "3", "Enter", "4"]
    for i in range(decisions):
        panel.press(keys[i % len(keys)])
        expect(panel).to_have_attribute("data-key", str(i + 1), timeout=30_000)
    times = page.evaluate("window.jlabelTimes")
    nb.clear_outputs(1)
    nb.run_cell(1)
    state = nb.output_json(1, timeout=120_000)
    if state["labeled"] != decisions or state["events"] != decisions:
        raise RuntimeError(f"expected {decisions} decisions in df and the store, got {state}")
    lab.close_sessions()
    spread = [round(percentile(times, q), 1) for q in (10, 25, 50, 75, 90, 95, 99, 100)]
    print(f"{rows:,} rows: key to next record, ms at p10 p25 p50 p75 p90 p95 p99 max: {spread}")
    return {
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "n": len(times),
        **state,
    }


def run_echo(page, lab: Lab, n: int) -> dict:
    name = lab.write_notebook("echo.ipynb", [ECHO.replace("{n}", str(n))])
    nb = Notebook(page, lab, name)
    nb.run_all()
    out = page.locator(".echo", has_text="ECHO=")
    out.wait_for(timeout=120_000)
    times = json.loads(out.inner_text().split("ECHO=", 1)[1])
    lab.close_sessions()
    return {"p50": percentile(times, 50), "p95": percentile(times, 95), "n": len(times)}


def screenshot(page, lab: Lab, path: Path) -> None:
    from playwright.sync_api import expect

    name = lab.write_notebook("jlabel-demo.ipynb", [SHOT])
    nb = Notebook(page, lab, name)
    nb.run_all()
    panel = page.locator(".jlabel-labeler")
    expect(panel).to_have_attribute("data-key", "0", timeout=60_000)
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
    panel.locator(".jlabel-key").click()
    page.wait_for_timeout(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    lab.close_sessions()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument(
        "--server",
        choices=("both", "plain", "nodelay"),
        default="both",
        help="JupyterLab with jlabel.server turned off (plain), with jlabel's server extension (nodelay), or both in one run",
    )
    args = parser.parse_args()
    if args.decisions >= args.small:
        args.small = args.decisions + 1  # the small frame must hold every decision
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is absent: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    modes = ("plain", "nodelay") if args.server == "both" else (args.server,)
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        for mode in modes:
            with tempfile.TemporaryDirectory() as tmp:
                lab = Lab(Path(tmp), nodelay=mode == "nodelay")
                page = browser.new_page(viewport={"width": 1280, "height": 820})
                try:
                    if args.screenshot and mode == modes[-1]:
                        screenshot(page, lab, args.screenshot)
                        print(f"screenshot: {args.screenshot}")
                    echo = run_echo(page, lab, args.decisions)
                    small = run_one(page, lab, args.small, args.decisions)
                    big = run_one(page, lab, args.rows, args.decisions)
                finally:
                    page.close()
                    lab.stop()
            results[mode] = {"echo": echo, "small": small, "big": big}
            report(mode, args, echo, small, big)
        browser.close()
    if len(modes) == 2:
        plain, fast = results["plain"], results["nodelay"]
        print(
            f"\nwith jlabel.server (TCP_NODELAY) vs without, 1,000,000 rows: p50 "
            f"{fast['big']['p50'] / plain['big']['p50']:.2f}x, p95 {fast['big']['p95'] / plain['big']['p95']:.2f}x"
        )
    print(json.dumps(results))


def report(mode: str, args, echo: dict, small: dict, big: dict) -> None:
    mb = 2**20
    server = "JupyterLab without jlabel.server" if mode == "plain" else "JupyterLab with jlabel.server (TCP_NODELAY)"
    print(f"\n== {server}")
    print(
        f"{'frame rows':>12} {'open s':>8} {'p50 ms':>8} {'p95 ms':>8} {'kernel ms':>10} "
        f"{'RSS open MB':>12} {'RSS +200 MB':>12}"
    )
    for rows, r in ((args.small, small), (args.rows, big)):
        kernel = r["kernel_decide_ms"] + r["kernel_records_ms"]
        print(
            f"{rows:>12,} {r['open_s']:>8.3f} {r['p50']:>8.1f} {r['p95']:>8.1f} {kernel:>10.2f} "
            f"{r['rss_open'] / mb:>12.1f} {r['rss_done'] / mb:>12.1f}"
        )
    growth_small = (small["rss_done"] - small["rss_open"]) / mb
    growth_big = (big["rss_done"] - big["rss_open"]) / mb
    # the first writes may copy a column the frame shared (pandas copy-on-write): one-off, not per decision
    steady_small = (small["rss_last"] - small["rss_20"]) / mb
    steady_big = (big["rss_last"] - big["rss_20"]) / mb
    print(f"baseline, an empty widget message and its echo: p50 {echo['p50']:.1f} ms, p95 {echo['p95']:.1f} ms")
    print(
        f"ratios panel/echo: small p50 {small['p50'] / echo['p50']:.2f}, p95 {small['p95'] / echo['p95']:.2f}; "
        f"big p50 {big['p50'] / echo['p50']:.2f}, p95 {big['p95'] / echo['p95']:.2f}"
    )
    print(
        f"ratios big/small: p50 {big['p50'] / small['p50']:.2f}, p95 {big['p95'] / small['p95']:.2f}, "
        f"open {big['open_s'] / max(small['open_s'], 1e-9):.1f}"
    )
    print(f"memory growth over {args.decisions} decisions: small {growth_small:.1f} MB, big {growth_big:.1f} MB")
    print(f"memory growth from decision 20 to {args.decisions}: small {steady_small:.1f} MB, big {steady_big:.1f} MB")


if __name__ == "__main__":
    main()
