"""Prompts: what a model is asked, built from the Task, with few-shot examples and verbalisers.

A :class:`Prompt` renders chat messages for one record. The record's text comes last, so the
instructions, label list and few-shot examples form a prefix shared by every record (a
backend evaluates it once). ``Prompt.hash`` identifies everything that shapes the answer and
is recorded with every suggestion (``llm_prompt``).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .task import Task

DEFAULT_TEMPLATE = "{text}"


@dataclass(frozen=True)
class Prompt:
    """The prompt for one task: system text, user template, few-shot examples, verbalisers.

    Parameters
    ----------
    task
        The task whose labels are asked for.
    template
        The user message; ``{text}`` is replaced by the record's text (and must appear once).
    system
        The system message; default built from the task's instructions and labels.
    examples
        Few-shot examples, ``(text, value)`` pairs (value: a label for single, a list of
        labels for multi, a list of span dicts for spans), shown in the given order.
    verbalizers
        ``{label: [surface form, ...]}``: a label is scored through all its forms (their
        probabilities add up), such as ``{"Sci/Tech": ["Sci/Tech", "Science", "Technology"]}``.
        Labels not named are scored through their own name, and (with ``split_labels``) their parts.
    split_labels
        A label that joins alternatives with ``/`` or ``&`` (``"Sci/Tech"``, ``"Arts & Culture"``)
        and has no verbalisers is scored through its name and each of its parts (``"Sci"``,
        ``"Tech"``): a small model that would answer ``"Technology"`` rarely starts its answer with
        ``"Sci/Tech"``. A label with a part shorter than two characters (``"AT&T"``, ``"24/7"``) is
        not split; parts another label also has (``"Sports"`` in ``"Sports/Tennis"`` and
        ``"Sports/Golf"``), that are another label's name or one of another label's verbalisers are
        left out. ``False``: labels without verbalisers are scored through their
        names only.

    Examples
    --------
    >>> task = Task(["World", "Sports"], instructions="Classify the news article by topic.")
    >>> p = Prompt(task, examples=[("Cup final tonight", "Sports")])
    >>> [m["role"] for m in p.messages("Talks in Geneva")]
    ['system', 'user', 'assistant', 'user']
    >>> p.messages("Talks in Geneva")[-1]["content"]
    'Talks in Geneva'
    >>> p.forms("World")
    ('World',)
    >>> Prompt(Task(["World", "Sci/Tech"])).forms("Sci/Tech")
    ('Sci/Tech', 'Sci', 'Tech')
    >>> len(p.hash)
    16
    """

    task: Task
    template: str = DEFAULT_TEMPLATE
    system: str | None = None
    examples: tuple[tuple[str, Any], ...] = ()
    verbalizers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    split_labels: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.task, Task):
            raise TypeError(f"Prompt needs a jl.Task, got {type(self.task).__name__}.")
        if not isinstance(self.template, str):
            raise TypeError(f"template must be a string with {{text}} in it, got {type(self.template).__name__}.")
        fields = [name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None]
        if fields != ["text"]:
            raise ValueError(
                f"template must contain {{text}} exactly once and no other field, got {self.template!r} "
                f"(fields {fields}); write literal braces as {{{{ and }}}}."
            )
        examples = tuple((str(text), self.task.check_value(value)) for text, value in self.examples)
        object.__setattr__(self, "examples", examples)
        verbalizers = {}
        for label, forms in dict(self.verbalizers).items():
            self.task.index_of(label)
            forms = (forms,) if isinstance(forms, str) else tuple(forms)
            if not forms or not all(isinstance(f, str) and f.strip() for f in forms):
                raise ValueError(f"verbalizers[{label!r}] must be non-empty strings, got {forms!r}.")
            verbalizers[label] = forms
        object.__setattr__(self, "verbalizers", verbalizers)
        if not isinstance(self.split_labels, bool):
            raise TypeError(f"split_labels must be True or False, got {self.split_labels!r}.")
        parts = label_parts(self.task.labels) if self.split_labels and self.task.kind == "single" else {}
        taken = {form.casefold() for forms in verbalizers.values() for form in forms}  # a user's forms win
        parts = {
            k: (k, *[p for p in v[1:] if p.casefold() not in taken]) for k, v in parts.items() if k not in verbalizers
        }
        object.__setattr__(self, "_parts", {k: v for k, v in parts.items() if len(v) > 1})

    # --- what the model sees ------------------------------------------------------------------

    def system_text(self) -> str:
        """The system message: instructions, the labels (with descriptions) and the answer format."""
        if self.system is not None:
            return self.system
        task = self.task
        lines = [task.instructions.strip() or _DEFAULT_INSTRUCTIONS[task.kind], "", "Labels:"]
        lines += [f"- {_describe(task, label)}" for label in task.labels]
        lines += ["", _ANSWER[task.kind]]
        return "\n".join(lines)

    def user_text(self, text: str) -> str:
        """The user message for one record."""
        return self.template.format(text=text)

    def question(self, text: str, label: str) -> str:
        """Multi-label: the user message asking whether ``label`` applies to ``text``."""
        return f"{self.user_text(text)}\n\nDoes the label {label!r} apply to this text? Answer yes or no."

    def messages(self, text: str, label: str | None = None) -> list[dict[str, str]]:
        """Chat messages for one record: system, few-shot turns, then the record.

        Parameters
        ----------
        text
            The record's text.
        label
            Multi-label tasks only: the label asked about (one yes/no question per label).
        """
        out = [{"role": "system", "content": self.system_text()}]
        for example, value in self.examples:
            if self.task.kind == "multi":
                asked = label if label is not None else self.task.labels[0]
                out.append({"role": "user", "content": self.question(example, asked)})
                out.append({"role": "assistant", "content": "yes" if asked in value else "no"})
            else:
                out.append({"role": "user", "content": self.user_text(example)})
                out.append({"role": "assistant", "content": self.answer(value)})
        if self.task.kind == "multi":
            if label is None:
                raise ValueError("A multi-label prompt asks about one label at a time: pass label=.")
            self.task.index_of(label)
            out.append({"role": "user", "content": self.question(text, label)})
        else:
            out.append({"role": "user", "content": self.user_text(text)})
        return out

    def answer(self, value: Any) -> str:
        """The assistant's answer text for a label value (single: the label's first form)."""
        if self.task.kind == "single":
            return self.forms(value)[0]
        if self.task.kind == "multi":
            return ", ".join(value)
        return json.dumps({"spans": list(value)}, ensure_ascii=False)

    def forms(self, label: str) -> tuple[str, ...]:
        """The surface forms a label is scored through: its verbalisers, else its name (and its parts)."""
        return self.verbalizers.get(label) or self._parts.get(label, (label,))

    # --- identity -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Everything that shapes the answer, as JSON-able data."""
        return {
            "task": self.task.to_dict(),
            "template": self.template,
            "system": self.system_text(),
            "examples": [[t, v] for t, v in self.examples],
            # a label's parts score like verbalisers; prompts without either keep the hash they had
            "verbalizers": {k: list(v) for k, v in sorted({**self._parts, **self.verbalizers}.items())},
        }

    @property
    def hash(self) -> str:
        """16 hex digits of the sha256 of :meth:`to_dict` (recorded as ``llm_prompt``)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def with_examples(self, examples: Sequence[tuple[str, Any]]) -> Prompt:
        """The same prompt with other few-shot examples."""
        return Prompt(self.task, self.template, self.system, tuple(examples), self.verbalizers, self.split_labels)


_DEFAULT_INSTRUCTIONS = {
    "single": "Label the text with the one label that fits it best.",
    "multi": "Decide which labels apply to the text.",
    "spans": "Mark the parts of the text that carry one of the labels.",
}
_ANSWER = {
    "single": "Answer with the label only.",
    "multi": "Answer yes or no.",
    "spans": (
        'Answer with JSON {"spans": [{"text": the exact words, "label": the label, "start": offset of the first '
        'character, "end": offset after the last character}]}. Offsets count characters from 0.'
    ),
}


def label_parts(labels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The forms of labels that join alternatives with ``/`` or ``&``: the label, then its parts.

    Examples
    --------
    >>> label_parts(["World", "Sci/Tech", "Arts & Culture"])
    {'Sci/Tech': ('Sci/Tech', 'Sci', 'Tech'), 'Arts & Culture': ('Arts & Culture', 'Arts', 'Culture')}
    >>> label_parts(["Sports/Tennis", "Sports/Golf", "N/A", "AT&T"])
    {'Sports/Tennis': ('Sports/Tennis', 'Tennis'), 'Sports/Golf': ('Sports/Golf', 'Golf')}
    """
    split = {label: [p.strip() for p in _JOINS.split(label)] for label in labels}
    seen: dict[str, int] = {}
    for parts in split.values():
        for part in {p.casefold() for p in parts}:
            seen[part] = seen.get(part, 0) + 1
    names = {label.casefold() for label in labels}
    out = {}
    for label, parts in split.items():
        if len(parts) < 2 or any(len(p) < 2 for p in parts):  # "AT&T", "24/7", "A/B testing" are names
            continue
        kept = [p for p in parts if seen[p.casefold()] == 1 and p.casefold() not in names]
        if kept:
            out[label] = (label, *dict.fromkeys(kept))
    return out


_JOINS = re.compile(r"\s*[/&]\s*")


def _describe(task: Task, label: str) -> str:
    description = task.descriptions.get(label, "")
    return f"{label}: {description}" if description else label


def default_prompt(
    task: Task,
    *,
    template: str = DEFAULT_TEMPLATE,
    system: str | None = None,
    examples: Sequence[tuple[str, Any]] = (),
    verbalizers: Mapping[str, Sequence[str]] | None = None,
    split_labels: bool = True,
) -> Prompt:
    """The default prompt for a task's kind, built from its instructions and labels.

    Examples
    --------
    >>> task = Task({"World": "politics, wars", "Sports": ""}, instructions="Topic?")
    >>> print(default_prompt(task).system_text())
    Topic?
    <BLANKLINE>
    Labels:
    - World: politics, wars
    - Sports
    <BLANKLINE>
    Answer with the label only.
    """
    return Prompt(task, template, system, tuple(examples), dict(verbalizers or {}), split_labels)


def choose_examples(
    df: pd.DataFrame,
    task: Task,
    *,
    per_label: int = 1,
    seed: int = 0,
    text_of: pd.Series | None = None,
) -> list[tuple[str, Any]]:
    """A balanced, shuffled set of few-shot examples from the rows people labeled.

    Takes the ``per_label`` most recent human labels of each label (by ``labeled_at`` when the
    frame has it, else row order), then shuffles them with ``seed`` so that no label is always
    last (a small model tends to copy the label of the last example).

    Parameters
    ----------
    df
        A frame with a ``label`` column (rows without a label are ignored).
    task
        The task; single-label and multi-label tasks (multi: by first label).
    per_label
        Examples per label.
    seed
        Shuffle seed (same seed, same order).
    text_of
        The record texts (default: built from the task's text column or template).

    Returns
    -------
    list of (text, value)
        At most ``per_label * len(task.labels)`` examples.

    Examples
    --------
    >>> task = Task(["A", "B"])
    >>> df = pd.DataFrame({"text": ["a1", "b1", "a2", "x"], "label": ["A", "B", "A", None]})
    >>> sorted(choose_examples(df, task))
    [('a2', 'A'), ('b1', 'B')]
    """
    from .frame import texts

    if not isinstance(per_label, int) or per_label < 0:
        raise ValueError(f"per_label must be a non-negative integer, got {per_label!r}.")
    if "label" not in df.columns or per_label == 0 or task.kind == "spans":
        return []
    # rows by position: an index may repeat (keys in an id= column), and .loc would take every row of a key
    df = df.reset_index(drop=True)
    text_of = None if text_of is None else text_of.reset_index(drop=True)
    labeled = df[df["label"].notna()]
    if "label_source" in labeled.columns:
        labeled = labeled[labeled["label_source"].fillna("human").isin(["human", "llm_edited", "llm_accepted"])]
    if labeled.empty:
        return []
    if "labeled_at" in labeled.columns and labeled["labeled_at"].notna().any():
        labeled = labeled.sort_values("labeled_at", kind="stable", na_position="first")
    values = labeled["label"]
    first = values if task.kind == "single" else values.map(lambda v: v[0] if len(v) else None)
    frame = pd.DataFrame({"group": first.to_numpy(), "order": np.arange(len(labeled))}, index=labeled.index)
    frame = frame[frame["group"].isin(task.labels)]
    chosen = frame.groupby("group", sort=False).tail(per_label).index
    source = text_of if text_of is not None else texts(labeled.loc[chosen], task)
    rows = list(zip(source.loc[chosen].tolist(), labeled.loc[chosen, "label"].tolist()))
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]
