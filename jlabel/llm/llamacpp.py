"""The llama.cpp backend: any GGUF file, label probabilities from full label token sequences.

How a record is scored
----------------------
The prompt is rendered with the model's own chat template, ending where the assistant's
answer starts. Each label form (the label, or its verbalisers) is appended and tokenised; the
longest token prefix common to all of them (the prompt) is evaluated, reusing the KV cache
of the previous record up to the longest common token prefix, so the instructions, labels and
few-shot examples are evaluated once and each record evaluates only its own tokens. Then
each form's continuation is evaluated after cutting the cache back to the prompt: its log
probability is the sum of its tokens' log probabilities. Forms of one label add up (a form
that extends another of the same label, ``"Sci/Tech"`` after ``"Sci"``, is inside it); labels
are normalised over the set. When one label's form begins another label's (``"Health"`` and
``"Health Policy"``), every form is scored with the end-of-turn token: the whole answer. Multi-label: P(yes) per label, from a
yes/no question per label (the record's tokens are shared between the questions).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..prompts import Prompt
from .base import LLM, SpanResult, narrow_vector, span_item_confidences

_DIGESTS: dict[tuple[str, int, int], str] = {}
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file (hex), cached per (path, size, mtime) for this process."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def check_gguf(path: str | os.PathLike, sha256: str | None = None) -> str:
    """Check that ``path`` is a GGUF file (and has ``sha256`` when given); return its digest.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not GGUF, or its sha256 differs from the one asked for.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"No model file at {str(file)!r}: give the path of a .gguf file, such as "
            f"jl.llm('llamacpp:/models/llama-3.1-8b-instruct-q4_k_m.gguf')."
        )
    with open(file, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ValueError(
            f"{str(file)!r} is not a GGUF model file (it starts with {magic!r}, not b'GGUF'): llama.cpp reads "
            f"only GGUF; convert the model with llama.cpp's convert_hf_to_gguf.py or download its GGUF version."
        )
    digest = file_sha256(file)
    if sha256 is not None and digest != sha256.lower().removeprefix("sha256:"):
        raise ValueError(
            f"{str(file)!r} has sha256 {digest}, not the expected {sha256}: the file is another model or is "
            f"damaged; reinstall or re-download it, or pass the sha256 of the file you mean to use."
        )
    return digest


def _one_at_a_time(method):
    """Run ``method`` holding the model's lock: llama.cpp's context serves one caller at a time.

    Two threads using one model at once (the panel prefetching while a cell pre-annotates) corrupt its
    cache and abort the process in llama.cpp (``GGML_ASSERT``); with the lock they take turns per record.
    """

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


_LOAD_LOCK = threading.Lock()


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has Intel AMX (read from /proc/cpuinfo; False where that cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="ignore") as info:
            return any(line.startswith("flags") and " amx_int8" in line for line in info)
    except OSError:
        return False


def load_llama(path: str | os.PathLike, *, extra_buffers: bool | None = None, **options):
    """``llama_cpp.Llama(path, **options)`` with llama.cpp's extra CPU buffer types on or off.

    ``Llama`` takes no argument for ``use_extra_bufts``, so the model parameters' defaults are
    swapped for the duration of the load. Every load holds a lock, so a load in another thread
    never sees the swapped defaults.
    """
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    if extra_buffers is None:
        extra_buffers = not cpu_has_amx()
    with _LOAD_LOCK:
        if extra_buffers:
            return llama_cpp.Llama(str(path), **options)
        if "use_extra_bufts" not in dict(lib.llama_model_params._fields_):
            warnings.warn(
                f"llama-cpp-python {llama_cpp.__version__} cannot turn llama.cpp's extra CPU buffer types off; "
                "on a CPU with AMX, upgrade it (pip install -U llama-cpp-python) if model calls crash.",
                RuntimeWarning,
                stacklevel=3,
            )
            return llama_cpp.Llama(str(path), **options)
        defaults = lib.llama_model_default_params

        def without_extra_buffers():
            params = defaults()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(str(path), **options)
        finally:
            lib.llama_model_default_params = defaults


class LlamaCppLLM(LLM):
    """A GGUF model run in-process by llama.cpp (llama-cpp-python).

    Parameters
    ----------
    path
        The .gguf file.
    n_ctx
        Context window in tokens; records that do not fit are cut (with a warning).
    n_threads
        CPU threads for generation and prompt evaluation (default: llama.cpp's choice). On a
        shared machine, a small number avoids threads spinning while they wait for a core.
    n_gpu_layers
        Layers offloaded to a GPU (``-1``: all) when llama.cpp was built with GPU support.
    sha256
        Refuse the file unless it has this digest.
    name
        The model's name in :attr:`id` (default: the file name).
    max_span_tokens
        The most tokens generated for a record's spans.
    max_spans
        The most spans asked for per record.
    seed
        llama.cpp's seed (decoding is greedy, so results do not depend on it).
    extra_buffers
        Let llama.cpp repack the weights into its extra CPU buffer types (AMX, repacked Q4_0).
        Default: off on CPUs with AMX, where llama.cpp 0.3.36's AMX kernels crash the process on
        the first batch of two or more tokens; on elsewhere.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        sha256: str | None = None,
        name: str | None = None,
        max_span_tokens: int = 512,
        max_spans: int = 6,
        seed: int = 0,
        extra_buffers: bool | None = None,
    ) -> None:
        if not isinstance(n_ctx, int) or n_ctx < 256:
            raise ValueError(f"n_ctx must be an integer of at least 256 tokens, got {n_ctx!r}.")
        self.path = Path(path).expanduser()
        self.digest = check_gguf(self.path, sha256)
        self.name = name or self.path.stem
        #: how a Dask worker loads the same model: (spec, options)
        self.spec: tuple[str | None, dict] = (
            f"llamacpp:{self.path}",
            {
                "n_ctx": n_ctx,
                "n_threads": n_threads,
                "n_gpu_layers": n_gpu_layers,
                "sha256": self.digest,
                "name": name,
                "max_span_tokens": max_span_tokens,
                "max_spans": max_spans,
                "seed": seed,
                "extra_buffers": extra_buffers,
            },
        )
        self.max_span_tokens = max_span_tokens
        self.max_spans = max_spans
        self._model = load_llama(
            self.path,
            extra_buffers=extra_buffers,
            n_ctx=n_ctx,
            n_threads=n_threads,
            # prompt evaluation on as many threads as generation (llama.cpp's default takes every
            # core, and threads spinning for a busy core slow a shared machine down many times)
            n_threads_batch=n_threads or max((os.cpu_count() or 2) // 2, 1),
            n_gpu_layers=n_gpu_layers,
            logits_all=False,
            seed=seed,
            verbose=False,
        )
        self.n_ctx = self._model.n_ctx()
        weakref.finalize(self, self._model.close)  # free llama.cpp memory before interpreter teardown
        self._evaluated = 0
        self._lock = threading.RLock()
        self._empty_prompts: dict[tuple[str, str | None], list[int]] = {}  # (prompt hash, label): tokens
        template = self._model.metadata.get("tokenizer.chat_template") or _CHATML
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self._template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
        self._end = self._turn_end()
        self._control = self._control_tokens()

    @property
    def id(self) -> str:
        """``llamacpp:NAME@sha256:DIGEST``."""
        return f"llamacpp:{self.name}@sha256:{self.digest}"

    def __repr__(self) -> str:
        return f"LlamaCppLLM({str(self.path)!r}, n_ctx={self.n_ctx}, sha256={self.digest[:12]!r})"

    def new_tokens(self) -> int:
        """Tokens evaluated by this model so far."""
        return self._evaluated

    # --- rendering and tokens --------------------------------------------------------------------

    @property
    def cuts_as(self) -> str:
        return f"to fit n_ctx={self.n_ctx}"

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text for ``messages``, ending where the assistant's answer starts.

        The messages' text cannot open or close a turn: a control token's text in it (a record
        quoting ``<|im_end|>``) is broken up by a zero-width space, so it is read as plain text.
        """
        safe = [{**m, "content": self._inert(m["content"])} for m in messages]
        return self._template.render(messages=safe, add_generation_prompt=True, bos_token="", eos_token="")

    def _control_tokens(self) -> re.Pattern | None:
        """A pattern matching the text of the model's control tokens (``<|im_start|>``, ...)."""
        import llama_cpp

        model = self._model
        vocab = llama_cpp.llama_model_get_vocab(model.model)
        special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        texts = {
            model.detokenize([i], special=True).decode("utf-8", errors="ignore")
            for i in range(model.n_vocab())
            if llama_cpp.llama_vocab_get_attr(vocab, i) & special
        }
        texts = sorted((t for t in texts if len(t) > 1), key=len, reverse=True)
        return re.compile("|".join(map(re.escape, texts))) if texts else None

    def _inert(self, text: str) -> str:
        if self._control is None or not isinstance(text, str):
            return text
        return self._control.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)

    def _turn_end(self) -> str:
        probe = [{"role": "user", "content": "x"}]
        open_ = self._template.render(messages=probe, add_generation_prompt=True, bos_token="", eos_token="")
        closed = self._template.render(
            messages=[*probe, {"role": "assistant", "content": "\x00"}],
            add_generation_prompt=False,
            bos_token="",
            eos_token="",
        )
        if not closed.startswith(open_) or "\x00" not in closed:
            return ""
        return closed[len(open_) :].split("\x00", 1)[1].rstrip()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens such as ``<|im_start|>`` parsed)."""
        return self._model.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _logits(self, tokens: Sequence[int], all_positions: bool = False, start: int | None = None) -> np.ndarray:
        """Evaluate ``tokens`` reusing the cache's longest common prefix; return logits.

        Returns the last position's logits (``all_positions=False``), or the logits of every
        position from ``start`` on (those are evaluated again even when cached).
        """
        return self._evaluate(tokens, all_positions, start)[0]

    def _evaluate(
        self,
        tokens: Sequence[int],
        all_positions: bool = False,
        start: int | None = None,
        pool: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`_logits`, and with ``pool=(a, b)`` the mean hidden state of positions ``a`` to ``b - 1``.

        Pooling evaluates those positions again even when cached, with llama.cpp's embeddings on: the
        same decode then hands out the last layer's (normalised) hidden states next to the logits.
        """
        import llama_cpp

        model = self._model
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit the context window of {self.n_ctx}")
        cached = model.input_ids[: model.n_tokens]
        n = min(len(cached), len(tokens))
        same = np.flatnonzero(cached[:n] != np.asarray(tokens[:n]))
        keep = int(same[0]) if len(same) else n
        # always evaluate at least two tokens: llama.cpp computes a one-token batch another way, and its
        # logits differ from the same position's in a longer batch by up to a percent
        keep = min(keep, max(len(tokens) - 2, 0))
        if all_positions and start is not None:
            keep = min(keep, start)
        if pool is not None:
            keep = min(keep, pool[0])
        model._ctx.kv_cache_seq_rm(-1, keep, -1)
        model.n_tokens = keep
        outputs_all = all_positions or pool is not None
        rows, hidden = [], []
        if pool is not None:
            llama_cpp.llama_set_embeddings(model._ctx.ctx, True)
        try:
            for begin in range(keep, len(tokens), model.n_batch):
                chunk = list(tokens[begin : begin + model.n_batch])
                model._batch.set_batch(batch=chunk, n_past=begin, logits_all=outputs_all)
                model._ctx.decode(model._batch)
                model.input_ids[begin : begin + len(chunk)] = chunk
                model.n_tokens = begin + len(chunk)
                outputs = len(chunk) if outputs_all else 1
                logits = np.ctypeslib.as_array(model._ctx.get_logits(), shape=(outputs * model.n_vocab(),))
                logits = logits.reshape(outputs, -1)
                rows.append((logits if all_positions else logits[-1:]).astype(np.float64))
                if pool is not None:
                    states = llama_cpp.llama_get_embeddings(model._ctx.ctx)
                    states = np.ctypeslib.as_array(states, shape=(outputs * model.n_embd(),)).reshape(outputs, -1)
                    positions = np.arange(begin, begin + len(chunk))
                    inside = (positions >= pool[0]) & (positions < pool[1])
                    hidden.append(states[inside].astype(np.float64))
        finally:
            if pool is not None:
                llama_cpp.llama_set_embeddings(model._ctx.ctx, False)
        self._evaluated += len(tokens) - keep
        if all_positions:
            logits = np.concatenate(rows)
            if start is not None:
                logits = logits[start - keep :]
        else:
            logits = rows[-1][-1]
        vector = None
        if pool is not None:
            states = np.concatenate(hidden)
            vector = states.mean(axis=0) if len(states) else np.zeros(model.n_embd())
        return logits, vector

    def sequence_logprobs(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Log probability of each sequence's tokens after their longest common prefix.

        The common prefix is evaluated once (reusing the cache); each continuation is then
        evaluated on top of it.
        """
        if not sequences:
            return np.zeros(0)
        shared = _common_length(sequences)
        if shared == 0:
            raise ValueError("the sequences share no prompt")
        if any(len(s) == shared for s in sequences):
            raise ValueError("one label's tokens are a prefix of another's and no end token tells them apart")
        prefix = list(sequences[0][:shared])
        start = _log_softmax(self._logits(prefix))
        out = np.empty(len(sequences))
        for i, seq in enumerate(sequences):
            rest = list(seq[shared:])
            total = start[rest[0]]
            if len(rest) > 1:
                logits = self._logits(prefix + rest[:-1], all_positions=True, start=len(prefix))
                steps = _log_softmax(logits[-(len(rest) - 1) :])
                total += steps[np.arange(len(rest) - 1), rest[1:]].sum()
            out[i] = total
        return out

    def _fit(self, prompt: Prompt, text: str, label: str | None, reserve: int) -> tuple[str, str | None]:
        """Cut ``text`` so that the prompt plus ``reserve`` tokens fits the context window."""
        full = len(self.tokenize(self.render(prompt.messages(text, label))))
        if full + reserve <= self.n_ctx:
            return text, None
        own = self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        keep = max(0, len(own) - (full + reserve - self.n_ctx))
        if keep == 0:
            raise ValueError(
                f"the prompt without the record needs {full - len(own) + reserve} tokens, more than n_ctx="
                f"{self.n_ctx}: use fewer few-shot examples or a larger n_ctx"
            )
        cut = self._model.detokenize(own[:keep]).decode("utf-8", errors="ignore")
        return cut, f"text of {len(own)} tokens cut to {keep} to fit n_ctx={self.n_ctx}"

    # --- the protocol ----------------------------------------------------------------------------

    @_one_at_a_time
    def score_one(self, prompt: Prompt, text: str) -> tuple[np.ndarray, str | None]:
        """Label probabilities for one record (see the module docstring for how)."""
        row, warning, _ = self._score(prompt, text, vector=False)
        return row, warning

    @_one_at_a_time
    def score_vector_one(self, prompt: Prompt, text: str) -> tuple[np.ndarray, str | None, np.ndarray | None]:
        """:meth:`score_one` and the record's vector: the mean hidden state of its own tokens, from the same pass.

        Models wider than :data:`~jlabel.llm.base.VECTOR_DIM` are projected to it (a fixed random projection,
        seed 0), so that a frame's vectors stay small whatever the model.
        """
        return self._score(prompt, text, vector=True)

    def _score(self, prompt: Prompt, text: str, vector: bool) -> tuple[np.ndarray, str | None, np.ndarray | None]:
        task = prompt.task
        if task.kind == "single":
            owner, forms = zip(*[(j, form) for j, label in enumerate(task.labels) for form in prompt.forms(label)])
            reserve = 8 + max(len(self.tokenize(form)) for form in forms)
            text, warning = self._fit(prompt, text, None, reserve)
            base = self.render(prompt.messages(text))
            pooled = self._record_vector(prompt, base, None) if vector else None
            logp = self._continuations(base, forms, owners=owner)
            per_label = np.full(len(task.labels), -np.inf)
            np.logaddexp.at(per_label, np.array(owner), logp)
            return np.exp(per_label - np.logaddexp.reduce(per_label)), warning, pooled
        if task.kind == "multi":
            out = np.empty(len(task.labels))
            pooled = None
            longest = max(task.labels, key=len)
            text, warning = self._fit(prompt, text, longest, 16)
            for j, label in enumerate(task.labels):
                base = self.render(prompt.messages(text, label))
                if vector and j == 0:
                    pooled = self._record_vector(prompt, base, label)
                yes, no = self._continuations(base, ["yes", "no"])
                out[j] = 1.0 / (1.0 + np.exp(no - yes))
            return out, warning, pooled
        raise ValueError("span tasks are generated with spans_one, not scored")

    def _record_vector(self, prompt: Prompt, base: str, label: str | None) -> np.ndarray:
        """The mean hidden state of the record's own tokens in ``base`` (where it differs from an empty record)."""
        tokens = self.tokenize(base)
        key = (prompt.hash, label)
        if key not in self._empty_prompts:  # the same for every record of a prompt
            self._empty_prompts[key] = self.tokenize(self.render(prompt.messages("", label)))
        empty = self._empty_prompts[key]
        start = _common_length([tokens, empty])
        end = max(start, len(tokens) - _common_length([tokens[::-1], empty[::-1]]))
        if end == start:  # an empty record: what the model makes of the whole prompt's last token
            start, end = len(tokens) - 1, len(tokens)
        _, pooled = self._evaluate(tokens, pool=(start, end))
        return narrow_vector(pooled)

    def _continuations(self, base: str, forms: Sequence[str], owners: Sequence[int] | None = None) -> np.ndarray:
        """Log probability of each form after ``base`` (``-inf`` for a form not counted on its own).

        When one label's form begins another label's (``"Health"`` and ``"Health Policy"``), every
        form is scored with the end-of-turn token after it: the probability of that exact answer,
        and a label's exact answers add up. Otherwise a form's probability is that the answer
        begins with it, and a form that extends another form of the same label (``"Sci/Tech"``
        after ``"Sci"``) is already inside that one's: it is left out rather than counted twice.
        """
        sequences = [self.tokenize(base + form) for form in forms]
        owners = list(range(len(forms))) if owners is None else list(owners)
        distinct = [
            i
            for i, s in enumerate(sequences)
            if not any(owners[j] == owners[i] and sequences[j] == s for j in range(i))
        ]
        ends = bool(self._end) and any(
            owners[i] != owners[j] and (sequences[i] == sequences[j] or _is_prefix(sequences[i], sequences[j]))
            for i in distinct
            for j in distinct
            if i != j
        )
        if ends:
            kept = distinct
            sequences = [self.tokenize(base + forms[i] + self._end) for i in kept]
        else:
            kept = [
                i
                for i in distinct
                if not any(owners[j] == owners[i] and _is_prefix(sequences[j], sequences[i]) for j in distinct)
            ]
            sequences = [sequences[i] for i in kept]
        out = np.full(len(forms), -np.inf)
        out[kept] = self.sequence_logprobs(sequences)
        return out

    @_one_at_a_time
    def spans_one(self, prompt: Prompt, text: str) -> SpanResult:
        """Grammar-constrained JSON spans, checked against the text, with per-span confidences.

        The model writes ``{"spans": [{"text", "label", "start", "end"}]}`` under a JSON-schema
        grammar (greedy). Each span must quote the record at its offsets: it is moved to where
        its quote occurs, or dropped with a note. A span's confidence is the geometric mean
        probability of its tokens, from the model's log probabilities of the written JSON
        evaluated again without the grammar.
        """
        from llama_cpp import LlamaGrammar

        from .ollama import check_spans

        task = prompt.task
        text, warning = self._fit(prompt, text, None, self.max_span_tokens)
        item = {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "label": {"type": "string", "enum": list(task.labels)},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
            },
            "required": ["text", "label", "start", "end"],
        }
        schema = {
            "type": "object",
            "properties": {"spans": {"type": "array", "items": item, "maxItems": self.max_spans}},
            "required": ["spans"],
        }
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        base = self.render(prompt.messages(text))
        tokens = self.tokenize(base)
        before = self._model.n_tokens
        out = self._model.create_completion(
            tokens, max_tokens=self.max_span_tokens, temperature=0.0, grammar=grammar, seed=0
        )
        self._evaluated += max(0, self._model.n_tokens - before)
        content = out["choices"][0]["text"]
        if out["choices"][0].get("finish_reason") == "length":
            raise ValueError(f"the span JSON was cut after {self.max_span_tokens} tokens: {content[:120]!r}...")
        try:
            raw = json.loads(content)["spans"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"the model's span JSON does not parse ({error}): {content[:200]!r}") from error
        confidence = self._item_confidence(tokens, content)
        spans, notes = check_spans(text, raw, task.labels, confidence)
        return SpanResult(spans, ([warning] if warning else []) + notes)

    @_one_at_a_time
    def generate(self, messages: list[dict[str, str]], *, max_tokens: int = 60) -> str:
        """Greedy free text after the chat ``messages``, up to the end of the assistant's turn."""
        tokens = self.tokenize(self.render(messages))
        room = self._model.n_ctx() - max_tokens
        if len(tokens) > room:
            raise ValueError(
                f"the chat takes {len(tokens)} tokens, more than the {room} that fit before the answer: "
                f"shorten it or load the model with a larger n_ctx."
            )
        before = self._model.n_tokens
        stop = [self._turn_end()] if self._turn_end() else []
        out = self._model.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, seed=0, stop=stop)
        self._evaluated += max(0, self._model.n_tokens - before)
        return out["choices"][0]["text"].strip()

    def _item_confidence(self, prompt_tokens: list[int], content: str) -> list[float]:
        written = self._model.tokenize(content.encode("utf-8"), add_bos=False, special=False)
        if not written:
            return []
        logits = self._logits(prompt_tokens + written[:-1], all_positions=True, start=len(prompt_tokens) - 1)
        lps = _log_softmax(logits)[np.arange(len(written)), written]
        pieces = [self._model.detokenize([t]).decode("utf-8", errors="ignore") for t in written]
        return span_item_confidences(content, pieces, lps)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def _common_length(sequences: Sequence[Sequence[int]]) -> int:
    length = min(len(s) for s in sequences)
    first = np.asarray(sequences[0][:length])
    shared = length
    for seq in sequences[1:]:
        diff = np.flatnonzero(np.asarray(seq[:length]) != first)
        shared = min(shared, int(diff[0]) if len(diff) else length)
    return shared


def _is_prefix(a: Sequence[int], b: Sequence[int]) -> bool:
    return len(a) < len(b) and list(b[: len(a)]) == list(a)
