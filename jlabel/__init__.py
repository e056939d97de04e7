"""jlabel: label data with a local LLM, inside Jupyter.

Every name a notebook uses is importable from here: ``import jlabel as jl``.
"""

from .audit import audit, report
from .dashboard import dashboard
from .evaluate import compare_prompts, evaluate
from .frame import probs, set_suggestions
from .io import export, read
from .llm import EgressError, llm
from .preannotate import preannotate
from .store import Store, StoreError
from .task import Task
from .widget import Labeler

__version__ = "0.1.0"

__all__ = [
    "EgressError",
    "Labeler",
    "Store",
    "StoreError",
    "Task",
    "__version__",
    "audit",
    "compare_prompts",
    "dashboard",
    "evaluate",
    "export",
    "llm",
    "preannotate",
    "probs",
    "read",
    "report",
    "set_suggestions",
]
