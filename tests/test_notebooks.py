"""The example notebooks: stored without outputs, in step with notebooks/build.py, and they run.

Each notebook is executed top to bottom with nbclient in a fresh kernel on the embedded model,
in a temporary folder (the files it writes land there).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import nbformat
import pytest

import jlabel as jl

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
NAMES = ["quickstart.ipynb", "prompt_tuning.ipynb", "quality_and_agreement.ipynb", "active_learning.ipynb"]
# the public names each notebook calls (a part that has not landed yet skips its notebook, saying which)
NEEDS = {
    "quickstart.ipynb": ["llm", "preannotate", "queue", "Labeler", "Store", "export"],
    "prompt_tuning.ipynb": ["llm", "preannotate", "evaluate", "compare_prompts"],
    "quality_and_agreement.ipynb": ["llm", "preannotate", "Labeler", "agreement", "check", "dashboard", "report"],
    "active_learning.ipynb": ["llm", "preannotate", "queue", "Labeler", "evaluate", "compare_prompts"],
}


def _builder():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_stored_without_outputs_and_matches_build_py():
    builder = _builder()
    assert sorted(builder.NOTEBOOKS) == sorted(NAMES)
    for name in NAMES:
        stored = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(stored)
        for cell in stored.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{name}: a code cell holds outputs; run `python notebooks/build.py`"
                assert cell.execution_count is None, f"{name}: a code cell has an execution count"
        built = builder.build(builder.NOTEBOOKS[name])
        assert [c.source for c in stored.cells] == [c.source for c in built.cells], (
            f"{name} differs from notebooks/build.py: run `python notebooks/build.py`"
        )


def test_the_quickstart_shows_the_panel():
    cells = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    assert any("jl.Labeler(" in source and source.rstrip().endswith("\nw") for source in code)
    assert len(cells) <= 14  # the first notebook a user opens stays short


def _run(name: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    # the kernel inherits the environment: a fresh score cache, so every suggestion is computed
    monkeypatch.setenv("JLABEL_CACHE", str(folder / "scores.sqlite"))

    missing = [attr for attr in NEEDS[name] if not hasattr(jl, attr)]
    if missing or importlib.util.find_spec("jlabel.datasets") is None:
        pytest.skip(f"{name} needs jl.{', jl.'.join(missing) or 'datasets'}, which has not landed in jlabel yet")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()  # jupyter_client starts "python" kernels with this interpreter: the jlabel under test
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> str:
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


def _events(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT annotator, action, value FROM events WHERE action != 'suggest'").fetchall()


@pytest.mark.slow
@pytest.mark.model
def test_quickstart_runs(tmp_path, monkeypatch):
    notebook = _run("quickstart.ipynb", tmp_path, monkeypatch)
    assert len(_events(tmp_path / "quickstart.db")) == 12
    assert len((tmp_path / "quickstart_labels.jsonl").read_text().splitlines()) == 12
    assert "application/vnd.jupyter.widget-view+json" in _outputs(notebook)  # the panel was displayed


@pytest.mark.slow
@pytest.mark.model
def test_prompt_tuning_runs(tmp_path, monkeypatch):
    notebook = _run("prompt_tuning.ipynb", tmp_path, monkeypatch)
    outputs = _outputs(notebook)
    for prompt in ("names", "described", "described + examples"):
        assert prompt in outputs
    assert "Prompts compared on the gold sample" in outputs  # the comparison chart was drawn
    assert "chosen:" in outputs


@pytest.mark.slow
@pytest.mark.model
def test_quality_and_agreement_runs(tmp_path, monkeypatch):
    notebook = _run("quality_and_agreement.ipynb", tmp_path, monkeypatch)
    annotators = {annotator for annotator, _, _ in _events(tmp_path / "team.db")}
    assert annotators == {"ana", "ben"}
    assert "cohen_kappa" in _outputs(notebook)
    assert "<html" in (tmp_path / "quality_report.html").read_text(encoding="utf-8").lower()


@pytest.mark.slow
@pytest.mark.model
def test_active_learning_runs(tmp_path, monkeypatch):
    notebook = _run("active_learning.ipynb", tmp_path, monkeypatch)
    assert len(_events(tmp_path / "active.db")) == 60
    outputs = _outputs(notebook)
    printed = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    line = next(x for x in printed.splitlines() if x.startswith("held-out accuracy, zero-shot:"))
    before, after = (float(part.rsplit(":", 1)[1]) for part in line.split("|"))
    assert after >= before, line  # the learned suggestions are no worse than the model alone
    assert "combined" in outputs or "head" in outputs
    assert "Suggestions vs number of labels" in outputs  # the learning curve was drawn
