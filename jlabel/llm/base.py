"""The protocol every model backend implements (llama.cpp, Ollama, your own).

A backend has an :attr:`LLM.id` that names the model and its file digest, and implements two
per-record methods on a :class:`~jlabel.prompts.Prompt`:

- :meth:`LLM.score_one` returns one probability row over the task's labels (single: sums to 1;
  multi: P(yes) per label), computed from token log-probabilities, never from generated text;
- :meth:`LLM.spans_one` returns the checked spans of one record (constrained JSON generation).

The batch methods (:meth:`LLM.score_records`, :meth:`LLM.score`, :meth:`LLM.spans`) are built
on them here: a record whose call fails gets its error recorded and the batch goes on.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..prompts import Prompt, default_prompt
from ..task import Task

#: the version of how backends turn a (model, prompt, text) into scores, vectors and spans. The score cache
#: keys by it: bump it with any change to what a backend returns for the same inputs (such as 958ecd7, which
#: changed some labels' scores), so that scores computed the old way are computed again, not reused
SCORING_VERSION = 2
#: record vectors are at most this wide (wider ones go through a fixed random projection): 512 bytes cached
VECTOR_DIM = 256
_PROJECTIONS: dict[int, np.ndarray] = {}


def narrow_vector(vector: np.ndarray) -> np.ndarray:
    """A record vector at most :data:`VECTOR_DIM` wide, as float32: a wider one is projected (seed 0, fixed per width)."""
    vector = np.asarray(vector, dtype=np.float64).ravel()
    if len(vector) > VECTOR_DIM:
        if len(vector) not in _PROJECTIONS:
            rng = np.random.default_rng(0)
            _PROJECTIONS[len(vector)] = rng.standard_normal((len(vector), VECTOR_DIM)) / np.sqrt(VECTOR_DIM)
        vector = vector @ _PROJECTIONS[len(vector)]
    return vector.astype(np.float32)


def put_rows(matrix: np.ndarray | None, n: int, rows, values: np.ndarray) -> np.ndarray:
    """``values`` written at ``rows`` of ``matrix``; ``None`` starts an ``(n, width)`` float32 matrix of NaN.

    Record vectors arrive in pieces and their width is known only once the first one has.
    """
    values = np.asarray(values, dtype=np.float32)
    if matrix is None:
        matrix = np.full((n, values.shape[-1]), np.nan, dtype=np.float32)
    matrix[rows] = values
    return matrix


@dataclass
class Scores:
    """The result of scoring a batch of records.

    Attributes
    ----------
    probs
        ``(n, k)`` label probabilities in the task's label order; a failed record's row is NaN.
    errors
        Per record: ``None``, or the error of a failed record.
    warnings
        Per record: ``None``, or a warning (such as a text cut to fit the context window).
    new_tokens
        Tokens the model evaluated for this batch (prefix reuse makes this small).
    vectors
        With ``vectors=True`` and a backend that reads them in the scoring pass: ``(n, d)`` float32
        record vectors (NaN rows where none), else ``None``.
    """

    probs: np.ndarray
    errors: list[str | None]
    warnings: list[str | None]
    new_tokens: int = 0
    vectors: np.ndarray | None = None


@dataclass
class SpanResult:
    """The spans of one record: ``[{start, end, label, confidence}]`` and notes on repairs/drops."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


class LLM(ABC):
    """A model backend: scores records against a task's labels, generates spans.

    Subclasses implement :attr:`id`, :meth:`score_one` and :meth:`spans_one`.
    """

    #: the hash of the last prompt used (the panel records it with live suggestions)
    prompt_hash: str | None = None

    @property
    @abstractmethod
    def id(self) -> str:
        """The model's id, including its file digest: ``"llamacpp:NAME@sha256:HEX"``."""

    @abstractmethod
    def score_one(self, prompt: Prompt, text: str) -> tuple[np.ndarray, str | None]:
        """Label probabilities for one record, and a warning or ``None``.

        single: the probability of each label's full token sequence after the prompt,
        normalised over the label set; multi: P(yes) per label.
        """

    #: Text in every "text cut to fit" warning under the backend's current context setting
    #: (``None``: it cuts no text). A cached score whose warning says the text was cut under
    #: another setting is scored again, so a larger context takes effect.
    cuts_as: str | None = None

    @property
    def gives_vectors(self) -> bool:
        """Whether :meth:`score_vector_one` gives record vectors: a backend that overrides it, until it finds
        it cannot (an Ollama model the server does not embed with)."""
        return type(self).score_vector_one is not LLM.score_vector_one

    def score_vector_one(self, prompt: Prompt, text: str) -> tuple[np.ndarray, str | None, np.ndarray | None]:
        """:meth:`score_one` and the record's vector from the same pass (``None``: this backend has none).

        The vector is what the model makes of the record's own tokens (their mean hidden state): the
        learned head reads it next to the words (:class:`jlabel.Assistant`'s ``vectors``).
        """
        row, warning = self.score_one(prompt, text)
        return row, warning, None

    @abstractmethod
    def spans_one(self, prompt: Prompt, text: str) -> SpanResult:
        """Constrained JSON generation of ``{start, end, label}`` spans for one record."""

    def new_tokens(self) -> int:
        """Tokens evaluated so far (backends that can count them override this)."""
        return 0

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int = 60) -> str:
        """Free text answering a chat (greedy, seeded): one-line explanations, never confidences."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot write free text: implement generate(messages, *, max_tokens) to use it here."
        )

    # --- built on the per-record methods -------------------------------------------------------

    def prompt_for(self, task: Task, prompt: Prompt | None = None, examples: Sequence[Any] = ()) -> Prompt:
        """The prompt to use: ``prompt`` (checked against ``task``), else the task's default."""
        if prompt is None:
            return default_prompt(task, examples=tuple(examples))
        if not isinstance(prompt, Prompt):
            raise TypeError(f"prompt must be a jlabel.prompts.Prompt, got {type(prompt).__name__}.")
        if prompt.task.id != task.id:
            raise ValueError(f"The prompt was built for task {prompt.task.id}, not this task ({task.id}).")
        return prompt.with_examples(examples) if examples else prompt

    def score_records(
        self,
        task: Task,
        texts: Sequence[str],
        *,
        prompt: Prompt | None = None,
        examples: Sequence[Any] = (),
        vectors: bool = False,
    ) -> Scores:
        """Score a batch; a failing record gets a NaN row and its error, the rest go on.

        ``vectors=True``: also the records' vectors (:meth:`score_vector_one`), in :attr:`Scores.vectors`.
        """
        if task.kind == "spans":
            raise ValueError("Span tasks have no label probabilities: use spans() (jl.preannotate does).")
        prompt = self.prompt_for(task, prompt, examples)
        self.prompt_hash = prompt.hash
        k = len(task.labels)
        out = np.full((len(texts), k), np.nan)
        errors: list[str | None] = [None] * len(texts)
        warnings: list[str | None] = [None] * len(texts)
        matrix = None
        before = self.new_tokens()
        for i, text in enumerate(texts):
            try:
                if vectors:
                    row, warnings[i], vector = self.score_vector_one(prompt, text)
                else:
                    (row, warnings[i]), vector = self.score_one(prompt, text), None
                row = np.asarray(row, dtype=np.float64)
                if row.shape != (k,) or not np.isfinite(row).all():
                    raise ValueError(f"the backend returned {row!r} for {k} labels")
                out[i] = row
                if vector is not None:
                    matrix = put_rows(matrix, len(texts), i, np.ravel(vector))
            except Exception as error:  # one record failing must not stop the batch
                errors[i] = f"{type(error).__name__}: {error}"
        return Scores(out, errors, warnings, self.new_tokens() - before, matrix)

    def score(
        self, task: Task, texts: Sequence[str], *, prompt: Prompt | None = None, examples: Sequence[Any] = ()
    ) -> np.ndarray:
        """The ``(n, k)`` probability matrix; raises the first record's error if any failed."""
        result = self.score_records(task, list(texts), prompt=prompt, examples=examples)
        failed = [e for e in result.errors if e is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(result.errors)} record(s) failed; first: {failed[0]}")
        return result.probs

    def spans(
        self, task: Task, texts: Sequence[str], *, prompt: Prompt | None = None, examples: Sequence[Any] = ()
    ) -> list[SpanResult]:
        """Spans for each record; a failing record gets a :class:`SpanResult` with its error."""
        if task.kind != "spans":
            raise ValueError(f"spans() is for span tasks; this task is {task.kind!r}: use score().")
        prompt = self.prompt_for(task, prompt, examples)
        self.prompt_hash = prompt.hash
        out = []
        for text in texts:
            try:
                out.append(self.spans_one(prompt, text))
            except Exception as error:
                out.append(SpanResult(error=f"{type(error).__name__}: {error}"))
        return out


def span_item_confidences(content: str, pieces: Sequence[str], logprobs: np.ndarray) -> list[float]:
    """Per item of the ``spans`` array in ``content``: the geometric mean probability of its tokens.

    ``pieces`` are the generated tokens' texts (they concatenate to ``content``) and ``logprobs``
    their log-probabilities. A JSON that stops parsing ends the list early.
    """
    lengths = np.array([len(p) for p in pieces], dtype=int)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    lps = np.asarray(logprobs, dtype=np.float64)
    out, decoder = [], json.JSONDecoder()
    try:
        i = content.index("[", content.index('"spans"')) + 1
        while True:
            while i < len(content) and content[i] in " \t\r\n,":
                i += 1
            if i >= len(content) or content[i] == "]":
                break
            _, j = decoder.raw_decode(content, i)
            inside = (starts < j) & (ends > i)
            out.append(float(np.exp(lps[inside].mean())) if inside.any() else float("nan"))
            i = j
    except ValueError:
        pass
    return out
