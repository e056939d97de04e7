"""What is being labeled: the kind of task, its labels, instructions and text."""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
import string
import unicodedata
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np

KINDS = ("single", "multi", "spans")


@dataclass(frozen=True)
class Task:
    """A labeling task.

    Parameters
    ----------
    labels
        The label set, as a list of names or a ``{name: description}`` mapping.
        Descriptions are shown to annotators and given to the model.
    kind
        ``"single"`` (one label per record), ``"multi"`` (any number of labels)
        or ``"spans"`` (labeled character spans inside the text).
    instructions
        What the annotator (and the model) is asked to do.
    text
        The column that holds each record's text, or a template such as
        ``"{title}\\n\\n{body}"`` naming several columns.

    Examples
    --------
    >>> task = Task(["World", "Sports"], instructions="Classify the news article by topic.")
    >>> task.labels
    ('World', 'Sports')
    >>> len(task.id)
    16
    """

    labels: tuple[str, ...]
    kind: str = "single"
    instructions: str = ""
    text: str = "text"
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def __init__(
        self,
        labels: Sequence[str] | Mapping[str, str],
        kind: str = "single",
        instructions: str = "",
        text: str = "text",
    ) -> None:
        self._define(labels, kind, instructions, text, new=True)

    def _define(self, labels, kind: str, instructions: str, text: str, *, new: bool) -> None:
        """Set the fields. ``new=False`` (a definition an earlier jlabel saved) skips the checks added
        since, so that a store or file made then still opens: its task id is what it was."""
        names, descriptions = _parse_labels(labels)
        if kind not in KINDS:
            raise ValueError(f"Unknown task kind {kind!r}: use one of {', '.join(map(repr, KINDS))}.")
        if new:
            _check_new_labels(names, kind)
        if not isinstance(instructions, str):
            raise TypeError(f"instructions must be a string, got {type(instructions).__name__}.")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"text must name a column (such as 'text') or be a template such as "
                f"'{{title}}\\n\\n{{body}}', got {text!r}."
            )
        object.__setattr__(self, "labels", names)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "instructions", instructions)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "descriptions", descriptions)
        if new:
            _check_template(text)

    @classmethod
    def from_data(cls, labels: Sequence[str], kind: str = "single") -> Task:
        """The task a frame's or a file's labels show (text column ``text``), as jlabel guesses it.

        The checks of a task you define (two labels at least, labels told apart by more than case)
        are left out: the data holds what it holds, such as one label so far.
        """
        return cls.from_dict({"labels": list(labels), "kind": kind, "text": "text"})

    @property
    def is_template(self) -> bool:
        """Whether ``text`` is a ``{column}`` template rather than a column name."""
        return bool(_template_fields(self.text))

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The frame columns the record text is built from."""
        return _template_fields(self.text) or (self.text,)

    def to_dict(self) -> dict:
        """The task's definition as plain JSON-able data."""
        return {
            "labels": list(self.labels),
            "descriptions": {k: self.descriptions[k] for k in self.labels if k in self.descriptions},
            "kind": self.kind,
            "instructions": self.instructions,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Task:
        """Rebuild a task from :meth:`to_dict` output."""
        descriptions = data.get("descriptions") or {}
        labels = {k: descriptions.get(k, "") for k in data["labels"]} if descriptions else data["labels"]
        task = cls.__new__(cls)
        task._define(labels, data["kind"], data.get("instructions", ""), data["text"], new=False)
        return task

    @property
    def id(self) -> str:
        """A stable id: the hash of the task's definition (16 hex digits)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def index_of(self, label: str) -> int:
        """The position of ``label`` in the label set; a clear error for an unknown label."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(f"Unknown label {label!r}: this task's labels are {list(self.labels)}.") from None

    def check_value(self, value):
        """Validate a label value for this task's kind and return it normalised.

        single: a label name; multi: a list (or 1-d numpy array) of label names (sorted in
        label order, no duplicates); spans: a list of ``{"start", "end", "label"}`` dicts
        with integer offsets (numpy integers become ints; booleans are refused).
        """
        if self.kind == "single":
            if not isinstance(value, str):
                raise TypeError(f"A single-label task takes one label name, got {value!r}.")
            self.index_of(value)
            return value
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value.tolist()
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError(f"A {self.kind} task takes a list, got {value!r}.")
        if self.kind == "multi":
            for label in value:
                self.index_of(label)
            return sorted(set(value), key=self.labels.index)
        spans = []
        for span in value:
            if not isinstance(span, Mapping) or not {"start", "end", "label"} <= set(span):
                raise TypeError(f"A span is a dict with start, end and label, got {span!r}.")
            start, end = span["start"], span["end"]
            if not (_is_integer(start) and _is_integer(end)) or not 0 <= start < end:
                raise ValueError(f"A span needs integer offsets with 0 <= start < end, got {span!r}.")
            start, end = int(start), int(end)
            self.index_of(span["label"])
            spans.append({"start": start, "end": end, "label": span["label"]})
        return sorted(spans, key=lambda s: (s["start"], s["end"], self.labels.index(s["label"])))

    def __hash__(self) -> int:
        # equal tasks (same fields) have the same definition, hence the same id
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Task(labels={list(self.labels)!r}, kind={self.kind!r}, text={self.text!r}, id={self.id!r})"


def _is_integer(value) -> bool:
    """An int, numpy integer or other integral number; never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _parse_labels(labels) -> tuple[tuple[str, ...], dict[str, str]]:
    if isinstance(labels, str):
        raise TypeError(f"labels must be a list of names or a {{name: description}} dict, not the string {labels!r}.")
    if isinstance(labels, AbstractSet):
        raise TypeError(
            f"labels must be in a fixed order, got a {type(labels).__name__} whose order changes between "
            f"Python sessions (and with it the task id): pass a list, e.g. sorted(labels)."
        )
    if isinstance(labels, Mapping):
        names = list(labels)
        descriptions = {}
        for name, description in labels.items():
            if description is not None and not isinstance(description, str):
                raise TypeError(f"The description of label {name!r} must be a string, got {description!r}.")
            if description:
                descriptions[str(name)] = description.strip()
    elif isinstance(labels, Sequence) or hasattr(labels, "__iter__"):
        names = list(labels)
        descriptions = {}
    else:
        raise TypeError(f"labels must be a list of names or a {{name: description}} dict, got {labels!r}.")
    if not names:
        raise ValueError("A task needs at least one label, e.g. Task(['positive', 'negative']).")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"Labels must be strings, got {name!r} ({type(name).__name__}).")
        if not name.strip():
            raise ValueError(f"A label must not be empty or only whitespace, got {name!r}.")
    names = [str(name) for name in names]  # numpy strings (np.unique) become plain str
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise ValueError(f"Duplicate labels {duplicates}: each label must appear once.")
    return tuple(names), descriptions


def _check_new_labels(names: tuple[str, ...], kind: str) -> None:
    """Labels an annotator can tell apart, and enough of them for the kind."""
    for name in names:
        if name != name.strip():
            raise ValueError(
                f"The label {name!r} has leading or trailing whitespace, which annotators cannot see: "
                f"use {name.strip()!r} (e.g. [label.strip() for label in labels])."
            )
    folded = {}
    for name in names:
        key = unicodedata.normalize("NFC", name).casefold()
        if key in folded:
            raise ValueError(
                f"The labels {folded[key]!r} and {name!r} look the same (they differ only in case or Unicode "
                f"form): keep one of them."
            )
        folded[key] = name
    if kind == "single" and len(names) < 2:
        raise ValueError(
            f"A single-label task needs at least two labels, got {list(names)}: every record would get that "
            f"label. For a yes/no label use Task({list(names)!r}, kind='multi'), or add the other label."
        )


@functools.lru_cache(maxsize=256)  # read on every record the panel shows: parsed once per text
def _template_fields(text: str) -> tuple[str, ...]:
    """The columns a template names, in order, once each (as frame.texts fills them); () for a column name."""
    if "{" not in text and "}" not in text:
        return ()
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(text) if name is not None))


def _check_template(template: str) -> None:
    if "{" not in template and "}" not in template:
        return
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(
            f"The text template {template!r} is malformed ({error}): name columns like '{{title}}' and write "
            f"a literal brace doubled, as {{{{ or }}}}."
        ) from None
    for _, name, spec, conversion in parsed:
        if name is not None and (not name or spec or conversion):
            raise ValueError(
                f"The text template {template!r} may only name columns, like '{{title}}'; "
                f"got field {name!r}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}. "
                f"Write a literal brace doubled, as {{{{ or }}}}."
            )
    if not any(name is not None for _, name, _, _ in parsed):
        raise ValueError(
            f"The text template {template!r} names no column: doubled braces ({{{{ }}}}) are literal braces. "
            f"Name a column with single braces, like '{{title}}'."
        )
