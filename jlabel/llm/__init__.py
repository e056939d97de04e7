"""Model backends: ``jl.llm(spec)`` returns one; all implement :class:`jlabel.llm.base.LLM`."""

from __future__ import annotations

from typing import Any

from .base import LLM, Scores, SpanResult
from .egress import EgressError

__all__ = ["LLM", "EgressError", "Scores", "SpanResult", "llm"]


def llm(spec: str | None = None, **options: Any) -> LLM:
    """Load a model backend.

    Parameters
    ----------
    spec
        ``None`` for the embedded default model (a small GGUF shipped in a PyPI package,
        no download); ``"llamacpp:/path/to/model.gguf"`` for any GGUF file;
        ``"ollama:MODEL"`` for a model served by Ollama.
    **options
        Passed to the backend: llama.cpp takes ``n_ctx``, ``n_threads``, ``n_gpu_layers``,
        ``sha256``; Ollama takes ``host``, ``num_ctx``.

    Returns
    -------
    LLM
        The backend.

    Raises
    ------
    ValueError
        For a spec that names no known backend.
    """
    if spec is None:
        from .models import embedded

        return embedded(**options)
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as 'llamacpp:/path/model.gguf', got {type(spec).__name__}.")
    kind, _, rest = spec.partition(":")
    if kind == "llamacpp" and rest:
        from .llamacpp import LlamaCppLLM

        return LlamaCppLLM(rest, **options)
    if kind == "ollama" and rest:
        from .ollama import OllamaLLM

        return OllamaLLM(rest, **options)
    raise ValueError(
        f"Unknown model spec {spec!r}: use None (the embedded model), 'llamacpp:/path/to/model.gguf' "
        f"or 'ollama:MODEL' (such as 'ollama:qwen2.5:7b-instruct')."
    )
