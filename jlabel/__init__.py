"""jlabel: label data with a local LLM, inside Jupyter.

Every name a notebook uses is importable from here: ``import jlabel as jl``.
"""

from .agreement import agreement
from .audit import audit, report
from .dashboard import dashboard
from .evaluate import compare_prompts, evaluate
from .frame import probs, set_suggestions
from .io import export, read
from .learn import Assistant, learning_curve
from .llm import EgressError, llm
from .preannotate import preannotate
from .quality import (
    annotator_report,
    apply_temperature,
    auto_accept_threshold,
    check,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
)
from .queue import assign, queue
from .store import Store, StoreError
from .task import Task
from .widget import Labeler

__version__ = "0.1.0"

__all__ = [
    "Assistant",
    "EgressError",
    "Labeler",
    "Store",
    "StoreError",
    "Task",
    "__version__",
    "agreement",
    "annotator_report",
    "apply_temperature",
    "assign",
    "audit",
    "auto_accept_threshold",
    "check",
    "compare_prompts",
    "dashboard",
    "evaluate",
    "expected_calibration_error",
    "export",
    "fit_temperature",
    "learning_curve",
    "llm",
    "preannotate",
    "probs",
    "queue",
    "read",
    "reliability_table",
    "report",
    "set_suggestions",
]
