"""Write the example notebooks from the cells below: ``python notebooks/build.py``.

The .ipynb files are generated so that they are easy to review and change here; they are
stored without outputs (tests/test_notebooks.py checks that and executes each one on the
embedded model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP = """\
import jlabel as jl
from jlabel.datasets import news_demo

news = news_demo()  # 120 short news items written for jlabel, with their topic
task = jl.Task(
    ["World", "Sports", "Business", "Sci/Tech"],
    instructions="Classify the news article by topic.",
    text="{title}. {description}",
)
llm = jl.llm()  # the embedded model: SmolLM2-135M on llama.cpp, no server, no download
"""

QUICKSTART = [
    (
        "md",
        """\
# jlabel quickstart

Label a small set of news items with a local model's help: the model suggests a label and a
confidence for every record, you confirm or correct them in the panel, and every decision lands
in your DataFrame and in a journal file. Nothing leaves this machine.""",
    ),
    ("code", SETUP),
    (
        "md",
        """\
Take 20 records and hide their topic: that is the unlabeled data you would start from.
`jl.preannotate` fills the `llm_*` columns: the suggested label, its probability, the model and
prompt that made it.""",
    ),
    (
        "code",
        """\
df = news.groupby("topic").head(5).drop(columns="topic")
df = jl.preannotate(df, task, llm)
df[["title", "llm_label", "llm_confidence"]].head()""",
    ),
    (
        "md",
        """\
## The panel

Click the panel, then use the keys: `1`-`4` choose a label, `Enter` accepts the suggestion,
`z` undoes, `s` skips, arrows move. Each decision is written to `quickstart.db` before the panel
moves on, so a crashed kernel loses nothing: reopen the panel on the same file and it resumes.""",
    ),
    (
        "code",
        """\
w = jl.Labeler(df, task, llm=llm, store="quickstart.db", order=jl.queue(df, strategy="least_confidence"))
w""",
    ),
    (
        "md",
        """\
*When this notebook runs unattended (in CI) nobody presses keys, so the next cell makes twelve
decisions through the panel's Python API, exactly as the keys would: accept the suggestion when
it is the true topic, else label the true topic. Skip it when you label by hand.*""",
    ),
    (
        "code",
        """\
truth = news["topic"]
for _ in range(12):
    key = w.current
    if key is None:  # the queue is done (a rerun on the same store)
        break
    if df.loc[key, "llm_label"] == truth[key]:
        w.decide(action="accept")
    else:
        w.decide(truth[key])""",
    ),
    (
        "md",
        """\
## Where the labels are

In the frame (`label`, `label_source`: `human`, `llm_accepted` or `llm_edited`, `annotator`,
`labeled_at`), in the journal file, and in any export format you need.""",
    ),
    (
        "code",
        """\
df.loc[df["label"].notna(), ["title", "llm_label", "label", "label_source", "annotator"]]""",
    ),
    (
        "code",
        """\
store = jl.Store("quickstart.db")
print(len(store.events()), "events in the journal;", len(store.state()), "records labeled")
jl.export(df[df["label"].notna()], "quickstart_labels.jsonl", task=task)  # text + label, for training""",
    ),
]

PROMPT_TUNING = [
    (
        "md",
        """\
# Prompt tuning

Which prompt should the model get? Score a few candidates on a small gold sample (records with
known labels) and pick by numbers, not by eye: accuracy, macro-F1, per-label F1, calibration
(ECE) and the share of records that could be accepted automatically at 95% accuracy.""",
    ),
    ("code", SETUP),
    (
        "md",
        """\
A gold sample of 50 records drawn at random (use 50-200 in a real project; the accuracy
intervals below show how much 50 records can tell apart). A few other records, labeled by hand,
give few-shot examples to the third prompt.""",
    ),
    (
        "code",
        """\
gold = news.sample(50, random_state=0).rename(columns={"topic": "label"})
labeled_elsewhere = news.drop(gold.index).groupby("topic").tail(1).rename(columns={"topic": "label"})
len(gold), len(labeled_elsewhere)""",
    ),
    (
        "md",
        """\
Three candidates (`jl.evaluate` also takes a `Task` or a `"... {text}"` template as a prompt):
the label names alone; the labels with a description each; and the described labels with one
example per label.""",
    ),
    (
        "code",
        """\
from jlabel.prompts import choose_examples, default_prompt

described = jl.Task(
    {
        "World": "international news, politics, governments, conflicts",
        "Sports": "games, teams, athletes, competitions",
        "Business": "companies, markets, trade, the economy",
        "Sci/Tech": "science, technology, computers, space, health research",
    },
    instructions=task.instructions,
    text=task.text,
)
examples = choose_examples(labeled_elsewhere, described, per_label=1, seed=0)
prompts = {
    "names": default_prompt(task),
    "described": default_prompt(described),
    "described + examples": default_prompt(described, examples=examples),
}""",
    ),
    (
        "code",
        """\
table = jl.evaluate(gold, task, llm, prompts, seed=0)
table.drop(columns=["model", "prompt_hash"]).round(3)""",
    ),
    ("code", "jl.compare_prompts(table)"),
    (
        "md",
        """\
Everything in the table except `records_per_s` and `seconds` is reproducible: the same call
gives the same numbers, and `model` (with the model file's sha256) and `prompt_hash` say exactly
what produced them. Pick the prompt with the best macro-F1 and use it for the unlabeled rest.""",
    ),
    (
        "code",
        """\
best = table["macro_f1"].idxmax()
print("chosen:", best, "| model:", table.loc[best, "model"], "| prompt:", table.loc[best, "prompt_hash"])
rest = news.drop(gold.index).groupby("topic").head(1).drop(columns="topic")
chosen = prompts[best]
rest = jl.preannotate(rest, chosen.task, llm, prompt=chosen)
rest[["title", "llm_label", "llm_confidence"]].head()""",
    ),
]

QUALITY = [
    (
        "md",
        """\
# Quality and agreement

Two annotators label the same records. How much do they agree (with each other and with the
model)? Which labels look wrong? The dashboard and a self-contained HTML report answer that for
a team lead.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
df = news.groupby("topic").head(6).drop(columns="topic")
df = jl.preannotate(df, task, llm)
truth = news.loc[df.index, "topic"]""",
    ),
    (
        "md",
        """\
*Simulated annotators: in a real project each person opens `jl.Labeler(df, task, store="team.db")`
in their own notebook on JupyterHub (their user name is recorded). Unattended (in CI) nobody
presses keys, so `ana` labels through the panel's Python API (the true topic), and `ben`'s labels
go straight into the same store through `Store.record_many`, with about one record in six
mislabeled.*""",
    ),
    (
        "code",
        """\
import numpy as np
import pandas as pd

rng = np.random.default_rng(0)
panel = jl.Labeler(df, task, store="team.db", annotator="ana")
while panel.current is not None:
    panel.decide(truth[panel.current], duration_ms=int(rng.integers(800, 4000)))

code = pd.Categorical(truth, categories=task.labels).codes
slip = rng.random(len(code)) < 1 / 6
wrong = (code + rng.integers(1, len(task.labels), len(code))) % len(task.labels)
ben = np.array(task.labels)[np.where(slip, wrong, code)]
store = jl.Store("team.db", task=task, annotator="ben")
store.record_many(pd.DataFrame({"record": df.index.astype(str), "action": "label", "value": ben}))
store.apply(df)  # the frame now holds each record's latest label (ben's)
df[["title", "llm_label", "label", "annotator"]].head()""",
    ),
    (
        "md",
        """\
Agreement between the two annotators, read from the shared store: percent agreement, Cohen's
kappa, Fleiss' kappa and Krippendorff's alpha, with bootstrap intervals (per label too).""",
    ),
    (
        "code",
        """\
agreement = jl.agreement(store)
agreement[agreement["label"] == "all"].round(3)""",
    ),
    (
        "md",
        """\
Which labels are likely wrong? `jl.check` ranks the labels the model confidently disagrees with
(and near-identical records labeled differently), each with a reason.""",
    ),
    (
        "code",
        """\
suspects = jl.check(df, task)
# known only because the labels were simulated: was the flagged label really wrong?
suspects["really_wrong"] = (suspects["label"] != truth.loc[suspects.index]).to_numpy()
suspects.head(10)""",
    ),
    ("code", "jl.dashboard(store)"),
    (
        "code",
        """\
jl.report(store, "quality_report.html", checks=suspects)  # one HTML file, opens offline""",
    ),
]

ACTIVE_LEARNING = [
    (
        "md",
        """\
# Active learning

Label the records the model is least sure about first, and let every label improve the
suggestions: `learn=True` combines the model's probabilities with a small head trained on the
labels so far, chosen by cross-validation so that it does no worse than the model alone on the
labels given so far. A held-out sample whose topics nobody labels tells whether the suggestions got better.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
truth = news["topic"]
held_out = news.groupby("topic").head(10).index  # 40 records nobody labels: the yardstick
# no labels yet: the model's zero-shot suggestions; learn=True also caches each record's vector for later
df = jl.preannotate(news.drop(columns="topic"), task, llm, learn=True)


def held_out_accuracy(frame):
    return round(float((frame.loc[held_out, "llm_label"] == truth[held_out]).mean()), 3)


print("zero-shot accuracy on the held-out records:", held_out_accuracy(df))""",
    ),
    (
        "md",
        """\
The queue puts the least confident suggestions first, with a share of random records mixed in so
that the labels are not only the model's blind spots.""",
    ),
    (
        "code",
        """\
pool = df.drop(held_out)
order = jl.queue(pool, strategy="least_confidence", explore=0.25, seed=0)
pool.loc[order[:8], ["title", "llm_label", "llm_confidence"]]""",
    ),
    (
        "md",
        """\
*Label the queue in the panel (`w` on its own line shows it). Unattended (in CI), the next cell
makes 60 decisions through the panel's Python API with the true topic.*""",
    ),
    (
        "code",
        """\
w = jl.Labeler(df, task, store="active.db", order=order)
for _ in range(60):
    if w.current is None:
        break
    w.decide(truth[w.current])
df["label"].value_counts()""",
    ),
    (
        "md",
        """\
Pre-annotate again, learning from the 60 labels. The model's scores and record vectors are
cached from the first run, so this costs no model call; `llm_source` says which source each suggestion came from (`zero-shot`, `head`,
`combined`). Records that were labeled get out-of-fold suggestions (their own label never
vouches for itself).""",
    ),
    (
        "code",
        """\
learned = jl.preannotate(df, task, llm, learn=True)
print("held-out accuracy, zero-shot:", held_out_accuracy(df), "| after 60 labels:", held_out_accuracy(learned))
learned.loc[held_out, "llm_source"].value_counts()""",
    ),
    (
        "md",
        """\
How accuracy grows with the number of labels, cross-validated on the labels themselves (the model
alone, the learned head, and the combination the assistant picks):""",
    ),
    ("code", "jl.learning_curve(df, task, llm)"),
    (
        "md",
        """\
In the panel, `jl.Labeler(df, task, llm=llm, learn=True)` does the same live: it refits in the
background after every decision, so the next suggestion already uses the label just given.""",
    ),
]

NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "prompt_tuning.ipynb": PROMPT_TUNING,
    "quality_and_agreement.ipynb": QUALITY,
    "active_learning.ipynb": ACTIVE_LEARNING,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook without outputs from ``(kind, source)`` pairs."""
    notebook = new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        source = source.strip("\n")
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding an unchanged notebook changes nothing
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def main(folder: Path = HERE) -> list[Path]:
    """Write every notebook into ``folder``; returns their paths."""
    written = []
    for name, cells in NOTEBOOKS.items():
        path = folder / name
        nbformat.write(build(cells), path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
