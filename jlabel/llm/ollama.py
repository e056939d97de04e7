"""The Ollama backend: label probabilities from the Ollama API's token logprobs.

``jl.llm("ollama:MODEL", host=...)`` talks to an Ollama server through the official
``ollama`` client. The host comes from ``host=``, else ``OLLAMA_HOST``, else
``http://127.0.0.1:11434``, and passes the egress guard before the first request. No credential
goes with it: the ``Authorization`` header the client adds from ``OLLAMA_API_KEY`` (an ollama.com
key) is removed.

How the probabilities are computed
----------------------------------
Ollama cannot score a given continuation (no prompt logprobs, no teacher forcing); it only
returns, for each token it generates, the log-probabilities of up to 20 alternatives
(``top_logprobs``). So each label gets a one-token code and the model is asked for the code:

- single: the prompt lists the labels as ``1. World``, ``2. Sports``, ... (``A.``..``T.`` for
  10-20 labels) and ``format`` (a JSON schema ``enum`` of the codes) constrains the answer.
  At the first generated position that carries the code, the alternatives whose text is a
  code give each label's probability; they are renormalised over the label set.
- multi: one request per label asks whether it applies (yes or no), constrained to a JSON
  boolean so that the first token is the answer; P(yes) = p(yes) / (p(yes) + p(no)), where
  ``yes``/``true`` and ``no``/``false`` in any case count as the same answer.
- spans: generation constrained by a JSON schema of ``{start, end, label, text}`` spans,
  checked against the record (see :meth:`OllamaLLM.spans_one` and :func:`check_spans`).

The prompt is the task's :class:`~jlabel.prompts.Prompt`: its instructions (or its own system
text), the label list with the codes (a label's verbalisers are shown next to it), its
few-shot examples answered with their codes, and the record through its template, last.

Limits
------
- At most 20 labels (``top_logprobs`` is capped at 20 alternatives).
- Why codes and not the labels' own first tokens: labels often share or split their first
  token ("Sports"/"Sci/Tech" may both start with "S"), and under a ``format`` enum of label
  names the forced opening quote hides the answer. On 100 news records with SmolLM2-135M
  through the stand-in, codes gave accuracy 0.30 (0.35 with batch-mean correction), reading
  the names' first tokens 0.17 (0.25), with 4 records that could not be read at all.
- The distribution is over the codes: it sees the label names only through the prompt,
  not through their own token sequences (the llama.cpp backend scores those in full).
- A code outside the 20 alternatives gets an estimate: the mass the 20 leave over, shared by
  the missing codes and capped at the 20th alternative's probability and at the generated
  answer's (greedy decoding under the ``format`` grammar picks the likeliest allowed answer).
  A small model that would rather write something else than any code (say, the label's
  name) thus gets a flat, low-confidence row, not a confident one.
- Whether logprobs are taken before or after the ``format`` grammar depends on the server;
  the ratios between the codes it lists are the same either way.
- The whole prompt (every message: instructions, label list and descriptions, few-shot
  examples, the record) is kept within ``max_chars`` characters so that it fits ``num_ctx``
  (Ollama itself would silently drop the start of the prompt, instructions included): the
  record is cut to what the rest leaves, and a prompt too large without the record is an
  error. It is a budget in characters, as the client cannot count the server's tokens: the
  default assumes about 3 characters per token, as in English. Text with more tokens per
  character (Chinese, Japanese, emoji) can still overflow: give such data a smaller ``max_chars``.
- The server keeps the shared prompt prefix in its cache between requests; the record sits
  at the end of the prompt so that the instructions and label list are evaluated once.
"""

from __future__ import annotations

import json
import os
import re
import string
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..prompts import Prompt
from ..task import Task
from .base import LLM, Scores, SpanResult, narrow_vector, span_item_confidences
from .egress import EgressError, pinned_address

DEFAULT_HOST = "http://127.0.0.1:11434"
MAX_LABELS = 20

_YES = frozenset(w for word in ("true", "yes") for w in (word, word.title(), word.upper()))
_NO = frozenset(w for word in ("false", "no") for w in (word, word.title(), word.upper()))
_YES_NO = {"type": "boolean"}


def resolve_host(host: str | None = None) -> str:
    """Return the Ollama base URL from ``host``, ``OLLAMA_HOST`` or the default.

    Parameters
    ----------
    host
        ``"http://10.0.0.5:11434"``, ``"10.0.0.5"``, ``"10.0.0.5:8080"`` or ``None``.

    Returns
    -------
    str
        ``scheme://host:port``, and a path prefix when given (a server behind a reverse proxy).
        Without a port, as the ``ollama`` client and CLI read the same ``OLLAMA_HOST``: 11434
        when no scheme is given, else the scheme's own port (80 for ``http://``, 443 for
        ``https://``). ``0.0.0.0``, ``::`` and an empty host (``":11434"``, as a server's own
        ``OLLAMA_HOST`` often reads) mean this machine, as to the ``ollama`` client.

    Examples
    --------
    >>> resolve_host("10.0.0.5"), resolve_host("http://10.0.0.5")
    ('http://10.0.0.5:11434', 'http://10.0.0.5:80')
    >>> resolve_host("https://gpu-box.lan/"), resolve_host("https://gpu-box.lan:8443/")
    ('https://gpu-box.lan:443', 'https://gpu-box.lan:8443')
    >>> resolve_host("0.0.0.0"), resolve_host(":8080"), resolve_host("http://gpu.lan:8080/ollama/")
    ('http://127.0.0.1:11434', 'http://127.0.0.1:8080', 'http://gpu.lan:8080/ollama')
    """
    raw = host if host is not None else os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"Ollama host must be a URL such as {DEFAULT_HOST!r}, got {raw!r}.")
    text = raw.strip()
    schemed = "://" in text
    parsed = urllib.parse.urlsplit(text if schemed else f"http://{text}")
    try:
        port = parsed.port
    except ValueError:
        port = -1
    name = parsed.hostname
    if not name and parsed.netloc.startswith(":"):  # ":11434": this machine
        name = "127.0.0.1"
    if parsed.scheme not in ("http", "https") or not name or port == -1:
        raise ValueError(f"Ollama host {raw!r} is not a URL such as {DEFAULT_HOST!r}.")
    if name in ("0.0.0.0", "::"):  # where a server listens on every address: reached here on loopback
        name = "127.0.0.1"
    hostname = f"[{name}]" if ":" in name else name
    default = {"http": 80, "https": 443}[parsed.scheme] if schemed else 11434
    return f"{parsed.scheme}://{hostname}:{port or default}{parsed.path.rstrip('/')}"


def _pinned_transport(host: str, address: str | None):
    """An httpx transport that sends every request to ``address`` (the one checked for ``host``).

    TLS still checks the certificate against ``host`` (sent as the SNI name), and the Host header
    keeps the name. A request for any other host is refused: nothing else was checked. No
    ``Authorization`` header goes out: jlabel is given no credential, and the one the ``ollama``
    client adds from ``OLLAMA_API_KEY`` (an ollama.com cloud key) is not for this server.
    """
    import httpx

    class Pinned(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.host != host:
                raise EgressError(
                    f"jlabel refuses to send a request to {request.url.host!r}: only {host!r} was checked."
                )
            request.headers.pop("Authorization", None)
            if address is not None:
                request.url = request.url.copy_with(host=address)
                request.extensions = {**request.extensions, "sni_hostname": host}
            return super().handle_request(request)

    # trust_env here reads only SSL_CERT_FILE / SSL_CERT_DIR (a private CA); proxies are the client's, turned off
    return Pinned(trust_env=True)


def label_codes(k: int) -> list[str]:
    """One-token answer codes for ``k`` labels: ``"1"``..``"9"``, else ``"A"``..``"T"``.

    Examples
    --------
    >>> label_codes(4)
    ['1', '2', '3', '4']
    >>> label_codes(12)[-2:]
    ['K', 'L']
    """
    if not 1 <= k <= MAX_LABELS:
        raise ValueError(
            f"The Ollama backend scores 1 to {MAX_LABELS} labels (Ollama returns at most {MAX_LABELS} "
            f"alternatives per token), got {k}. Use jl.llm('llamacpp:/path/to/model.gguf') for larger label sets."
        )
    return [str(i + 1) for i in range(k)] if k <= 9 else list(string.ascii_uppercase[:k])


def distribution(
    alternatives: Sequence[tuple[str, float]],
    groups: Sequence[frozenset[str]],
    *,
    chosen: tuple[str, float] | None = None,
) -> np.ndarray:
    """Spread one position's ``top_logprobs`` over answer groups and renormalise.

    Parameters
    ----------
    alternatives
        ``(token, logprob)`` pairs as the API returns them (at most 20).
    groups
        For each answer, the token texts that count for it (compared stripped of spaces
        and quotes).
    chosen
        The ``(token, logprob)`` generated at that position, added when it is not among
        ``alternatives`` (a grammar can force a token outside the top 20).

    Returns
    -------
    numpy.ndarray
        One probability per group, summing to 1. A group absent from the tokens gets the
        left-over mass shared among absent groups, capped at the smallest listed probability
        (with greedy decoding under a grammar, the chosen answer is the likeliest allowed one,
        so an absent answer is also less likely than it).

    Raises
    ------
    ValueError
        When no token belongs to any group.

    Examples
    --------
    >>> distribution([("2", -0.1), ("1", -2.5), ("The", -3.0)], [frozenset({"1"}), frozenset({"2"})]).round(3)
    array([0.083, 0.917])
    >>> distribution([("The", -0.2)], [frozenset({"yes"}), frozenset({"no"})], chosen=("no", -6.0)).round(3)
    array([0.5, 0.5])
    """
    pairs = list(alternatives)
    if chosen is not None and chosen[0] not in {t for t, _ in pairs}:
        pairs.append(chosen)
    keys = [str(t).strip().strip('"').strip() for t, _ in pairs]
    probs = np.exp(np.array([lp for _, lp in pairs], dtype=np.float64))
    member = np.array([[key in group for key in keys] for group in groups], dtype=bool).reshape(len(groups), -1)
    if not member.any():
        shown = ", ".join(repr(t) for t, _ in pairs[:5])
        raise ValueError(
            f"none of the answers {sorted(set().union(*groups))} is among the model's top tokens ({shown}, ...)"
        )
    mass = member.astype(np.float64) @ probs
    missing = ~member.any(axis=1)
    if missing.any():
        left = max(0.0, 1.0 - probs.sum())
        mass[missing] = min(probs.min(), left / missing.sum())
    return mass / mass.sum()


class OllamaLLM(LLM):
    """A model served by Ollama, scored through the official ``ollama`` client.

    Parameters
    ----------
    model
        The Ollama model name, such as ``"qwen2.5:7b-instruct"`` (``ollama list`` shows them).
    host
        The server URL; default ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``. Public
        addresses are refused unless named in ``JLABEL_ALLOWED_HOSTS``.
    num_ctx
        The context window asked of the server, in tokens.
    max_chars
        The most characters of a prompt (all its messages, the record included), so that it fits
        ``num_ctx``: a longer record is cut (with a warning) to what the rest leaves; default
        ``3 * (num_ctx - 512)``, which assumes about 3 characters per token (English): lower it
        for text with more tokens per character (Chinese, Japanese, emoji).
    max_spans
        The most spans asked for per record (a bound on generation time).
    seed
        Sampling seed sent with every request (decoding is greedy, so only ties depend on it).
    timeout
        Seconds to wait for one HTTP response.
    """

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        num_ctx: int = 2048,
        max_chars: int | None = None,
        max_spans: int = 16,
        seed: int = 0,
        timeout: float = 300.0,
    ) -> None:
        import inspect
        from importlib.metadata import version

        import ollama

        if "logprobs" not in inspect.signature(ollama.Client.chat).parameters:
            raise ImportError(
                f"The Ollama backend needs the ollama client 0.6.3 or newer (logprobs support), "
                f"found {version('ollama')}: pip install -U 'ollama>=0.6.3'."
            )
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"Ollama model must be a name such as 'qwen2.5:7b-instruct', got {model!r}.")
        for name, value, low in (("num_ctx", num_ctx, 1024), ("max_chars", max_chars, 1), ("max_spans", max_spans, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}.")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an integer, got {seed!r}.")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        self.model = model.strip()
        self.host = resolve_host(host)
        pinned = pinned_address(urllib.parse.urlsplit(self.host).hostname)
        self.num_ctx = num_ctx
        self.max_chars = max_chars if max_chars is not None else 3 * (num_ctx - 512)
        self.max_spans = max_spans
        self.seed = seed
        #: how a Dask worker reaches the same model: (spec, options)
        self.spec: tuple[str, dict] = (
            f"ollama:{self.model}",
            {
                "host": self.host,
                "num_ctx": num_ctx,
                "max_chars": max_chars,
                "max_spans": max_spans,
                "seed": seed,
                "timeout": timeout,
            },
        )
        self._ollama = ollama
        # data goes to the checked address and nowhere else: no redirect is followed, no proxy from
        # the environment (HTTP_PROXY) is used, and a host name is not resolved again (DNS rebinding)
        self._client = ollama.Client(
            host=self.host,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=_pinned_transport(urllib.parse.urlsplit(self.host).hostname, pinned),
        )
        self._new_tokens = 0
        self._embeds = True  # until the server says it cannot embed with this model
        self.digest = self._digest()

    # --- errors a person can act on --------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(**kwargs)
        except ConnectionError as exc:
            raise ConnectionError(
                f"Cannot reach Ollama at {self.host}: {exc}. Start it there with `ollama serve`, "
                f"or pass host='http://HOST:11434' (or set OLLAMA_HOST) to point at a running server."
            ) from exc
        except self._ollama.ResponseError as exc:
            if exc.status_code == 404 and "not found" in str(exc.error):
                raise LookupError(
                    f"Ollama at {self.host} has no model {self.model!r}: run `ollama pull {self.model}` "
                    f"on that machine (`ollama list` shows the models it has)."
                ) from exc
            if 300 <= exc.status_code < 400:
                raise RuntimeError(
                    f"Ollama at {self.host} answered {exc.status_code}, a redirect: jlabel follows none (the data "
                    f"would go to an address it never checked); give host= the address that serves the API."
                ) from exc
            raise RuntimeError(f"Ollama at {self.host} answered {exc.status_code}: {exc.error}") from exc

    def _digest(self) -> str:
        listed = self._call("list").models
        full = self.model if ":" in self.model else f"{self.model}:latest"
        for entry in listed:
            if entry.model in (self.model, full) and entry.digest:
                return entry.digest.removeprefix("sha256:")
        self._call("show", model=self.model)  # raises the "ollama pull" error for a missing model
        raise LookupError(f"Ollama at {self.host} shows {self.model!r} but lists no digest for it.")

    def close(self) -> None:
        """Close the HTTP connections to the server (also done when the backend is garbage-collected)."""
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    def __enter__(self) -> OllamaLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to close with
            pass

    @property
    def id(self) -> str:
        """``ollama:MODEL@sha256:DIGEST``: the model name and the digest the server reports."""
        return f"ollama:{self.model}@sha256:{self.digest}"

    def __repr__(self) -> str:
        return f"OllamaLLM({self.model!r}, host={self.host!r}, digest={self.digest[:12]!r})"

    # --- the protocol ----------------------------------------------------------------------

    def new_tokens(self) -> int:
        """Tokens the server evaluated for this backend so far (prompt and generated, as reported)."""
        return self._new_tokens

    def score_records(self, task: Task, texts: Sequence[str], **kwargs: Any) -> Scores:
        """Score a batch (see :meth:`jlabel.llm.base.LLM.score_records`); more than 20 labels fail at once."""
        if task.kind == "single":
            label_codes(len(task.labels))
        return super().score_records(task, texts, **kwargs)

    def score_one(self, prompt: Prompt, text: str) -> tuple[np.ndarray, str | None]:
        """Label probabilities for one record from the first answer token's ``top_logprobs``.

        Parameters
        ----------
        prompt
            The task's prompt (instructions, template, few-shot examples, verbalisers).
        text
            The record's text.

        Returns
        -------
        probs, warning
            single: one probability per label, summing to 1; multi: P(yes) per label. The
            warning says when the text was cut to fit ``num_ctx``.
        """
        text, warning = self._fit_record(prompt, text)
        if prompt.task.kind == "multi":
            row = np.array(
                [
                    self._answer(self._ask(prompt.messages(text, label=label), _YES_NO, 3), _yes_no, 2)[0]
                    for label in prompt.task.labels
                ]
            )
            return row, warning
        k = len(prompt.task.labels)
        codes = label_codes(k)
        fmt: dict[str, Any] = (
            {"type": "integer", "enum": [int(c) for c in codes]} if k <= 9 else {"type": "string", "enum": codes}
        )
        response = self._ask(self._coded_messages(prompt, codes, text), fmt, 3)
        return self._answer(response, {c: i for i, c in enumerate(codes)}.get, k), warning

    @property
    def gives_vectors(self) -> bool:
        return self._embeds

    @property
    def cuts_as(self) -> str:
        return f"to fit num_ctx={self.num_ctx} with max_chars={self.max_chars}"

    def score_vector_one(self, prompt: Prompt, text: str) -> tuple[np.ndarray, str | None, np.ndarray | None]:
        """:meth:`score_one`, and the record's vector from the server's ``/api/embed`` (a second request).

        Ollama embeds the record's text alone (its own pooling, unit length), not in the prompt as the
        llama.cpp backend does. ``None`` when the server cannot embed with this model: asked once, then
        not again.
        """
        row, warning = self.score_one(prompt, text)
        if not self._embeds:
            return row, warning, None
        try:
            response = self._call("embed", model=self.model, input=self._fit_record(prompt, text)[0], truncate=True)
        except RuntimeError:  # the server answered an error: this model does not embed
            self._embeds = False
            return row, warning, None
        self._new_tokens += int(getattr(response, "prompt_eval_count", 0) or 0)
        return row, warning, narrow_vector(response.embeddings[0])

    def spans_one(self, prompt: Prompt, text: str) -> SpanResult:
        """Spans for one record: JSON-schema-constrained generation, checked against the text.

        Each span quotes its text; offsets that do not match the quote are moved to the
        nearest place the quote occurs, or the span is dropped (see :func:`check_spans`). A
        span's confidence is the geometric mean probability of the tokens that wrote it.
        """
        text, warning = self._fit_record(prompt, text)
        item = {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "label": {"type": "string", "enum": list(prompt.task.labels)},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
            },
            "required": ["text", "label", "start", "end"],
        }
        spans_schema = {"type": "array", "items": item, "maxItems": self.max_spans}
        fmt = {"type": "object", "properties": {"spans": spans_schema}, "required": ["spans"]}
        response = self._ask(prompt.messages(text), fmt, 64 * self.max_spans + 16)
        content = response.message.content or ""
        if response.done_reason == "length":
            raise ValueError(f"the span JSON was cut after {response.eval_count} tokens: {content[:120]!r}...")
        try:
            raw = json.loads(content)["spans"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"the span JSON does not parse ({exc}): {content[:200]!r}") from exc
        spans, notes = check_spans(text, raw, prompt.task.labels, _item_confidence(content, response.logprobs or []))
        return SpanResult(spans=spans, notes=[warning, *notes] if warning else notes)

    # --- requests ------------------------------------------------------------------------

    def _coded_messages(self, prompt: Prompt, codes: Sequence[str], text: str) -> list[dict[str, str]]:
        task = prompt.task
        word = "number" if codes[0] == "1" else "letter"
        lines = [prompt.system or task.instructions.strip() or "Label the text with the one label that fits it best."]
        lines += ["", "Labels:"]
        for code, label in zip(codes, task.labels):
            # the user's verbalisers only: a label's automatic parts help token scoring, and the model
            # answers here with a code
            forms = [f for f in prompt.verbalizers.get(label, ()) if f != label]
            line = f"{code}. {label}" + (f" ({', '.join(forms)})" if forms else "")
            description = task.descriptions.get(label, "")
            lines.append(f"{line}: {description}" if description else line)
        lines += ["", f"Answer with the {word} of the label only."]
        messages = [{"role": "system", "content": "\n".join(lines)}]
        for example, value in prompt.examples:
            messages.append({"role": "user", "content": prompt.user_text(example)})
            messages.append({"role": "assistant", "content": codes[task.index_of(value)]})
        messages.append({"role": "user", "content": prompt.user_text(text)})
        return messages

    def _fit_record(self, prompt: Prompt, text: str) -> tuple[str, str | None]:
        """Cut ``text`` so that the whole prompt sent for it keeps within ``max_chars`` characters."""
        if not isinstance(text, str):
            raise TypeError(f"record text must be a string, got {type(text).__name__}: {text!r}")
        task = prompt.task
        if task.kind == "single":
            codes = label_codes(len(task.labels))
            return self._fit(text, lambda t: self._coded_messages(prompt, codes, t))
        if task.kind == "multi":  # one prompt per label: the longest label's is the largest
            return self._fit(text, lambda t: prompt.messages(t, label=max(task.labels, key=len)))
        return self._fit(text, prompt.messages)

    def _fit(self, text: str, build: Callable[[str], list[dict[str, str]]]) -> tuple[str, str | None]:
        """Cut ``text`` so that the messages ``build(text)`` hold at most ``max_chars`` characters in all."""
        full = _chars(build(text))
        if full <= self.max_chars:
            return text, None
        fixed = _chars(build(""))
        times = max(1, (full - fixed) // max(1, len(text)))  # a template may show the record more than once
        keep = (self.max_chars - fixed) // times
        if keep <= 0:
            raise ValueError(
                f"the prompt without the record needs {fixed} characters, more than num_ctx={self.num_ctx} holds "
                f"(max_chars={self.max_chars}): use fewer few-shot examples or a larger num_ctx"
            )
        return text[:keep], (
            f"text of {len(text)} characters cut to {keep} {self.cuts_as} for the whole prompt "
            f"(raise num_ctx= or max_chars= to keep more)"
        )

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int = 60) -> str:
        """Greedy free text answering the chat ``messages`` (``/api/chat`` without a format)."""
        response = self._call(
            "chat",
            model=self.model,
            messages=messages,
            options={"temperature": 0, "seed": self.seed, "num_ctx": self.num_ctx, "num_predict": max_tokens},
            stream=False,
        )
        self._new_tokens += (response.prompt_eval_count or 0) + (response.eval_count or 0)
        return (response.message.content or "").strip()

    def _ask(self, messages: list[dict[str, str]], fmt: dict[str, Any], num_predict: int) -> Any:
        response = self._call(
            "chat",
            model=self.model,
            messages=messages,
            format=fmt,
            options={"temperature": 0, "seed": self.seed, "num_ctx": self.num_ctx, "num_predict": num_predict},
            logprobs=True,
            top_logprobs=MAX_LABELS,
            stream=False,
        )
        self._new_tokens += (response.prompt_eval_count or 0) + (response.eval_count or 0)
        return response

    def _answer(self, response: Any, which: Callable[[str], int | None], k: int) -> np.ndarray:
        if response.logprobs is None:
            raise ValueError(
                f"Ollama at {self.host} returned no logprobs: update Ollama to a version whose API returns them"
            )
        # the first position where an answer shows up (with a string enum, position 0 is a forced quote
        # whose alternatives may already hold the answer the model wanted to write)
        for entry in response.logprobs:
            alternatives = [(t.token, t.logprob) for t in entry.top_logprobs or []]
            chosen = (entry.token, entry.logprob) if _key(entry.token) else None
            hits = {key: which(key) for key in {_key(t) for t, _ in alternatives + ([chosen] if chosen else [])}}
            groups = [frozenset(key for key, j in hits.items() if j == i) for i in range(k)]
            if any(groups):
                return distribution(alternatives, groups, chosen=chosen)
        raise ValueError(f"no answer among the model's top tokens (it wrote {response.message.content!r})")


def _chars(messages: Sequence[dict[str, str]]) -> int:
    """The characters of a prompt: every message's text (the chat template's few are in the reserve)."""
    return sum(len(m["content"]) for m in messages)


def _key(token: str) -> str:
    return str(token).strip().strip('"').strip()


def _yes_no(key: str) -> int | None:
    return 0 if key in _YES else 1 if key in _NO else None


def _item_confidence(content: str, logprobs: Sequence[Any]) -> list[float]:
    """Per item of the ``spans`` array: the geometric mean probability of its tokens."""
    return span_item_confidences(content, [e.token for e in logprobs], np.array([e.logprob for e in logprobs]))


def check_spans(
    text: str, raw: Any, labels: Sequence[str], confidence: Sequence[float] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep the spans whose offsets match their quoted text; repair or drop the others.

    Parameters
    ----------
    text
        The record text the offsets refer to.
    raw
        The model's ``spans`` list: dicts with ``text``, ``label``, ``start`` and ``end``.
    labels
        The task's labels.
    confidence
        A confidence per raw span (missing ones become NaN).

    Returns
    -------
    spans, notes
        ``[{start, end, label, confidence}]`` sorted by offset, and one note per span that
        was repaired (moved to where its quote occurs) or dropped (with the reason). Spans do
        not overlap: of two that do, the more confident one stays (the earlier one on a tie).

    Examples
    --------
    >>> check_spans("Ana met Bo in Oslo.", [{"text": "Oslo", "label": "LOC", "start": 0, "end": 4}], ["LOC"])
    ([{'start': 14, 'end': 18, 'label': 'LOC', 'confidence': nan}], ["span 0 'Oslo': offsets 0:4 repaired to 14:18"])
    """
    spans, notes, seen = [], [], set()
    for n, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            notes.append(f"span {n} dropped: not an object ({item!r})")
            continue
        quote, label, start, end = item.get("text"), item.get("label"), item.get("start"), item.get("end")
        if label not in labels:
            notes.append(f"span {n} dropped: label {label!r} is not one of {list(labels)}")
            continue
        if not isinstance(quote, str) or not quote.strip():
            notes.append(f"span {n} dropped: no quoted text")
            continue
        ok = isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)
        if not (ok and text[start:end] == quote):
            found = [m.start() for m in re.finditer(f"(?={re.escape(quote)})", text)]
            if not found:
                notes.append(f"span {n} dropped: {quote!r} does not occur in the text")
                continue
            near = min(found, key=lambda i: abs(i - start) if isinstance(start, int) else i)
            repaired = f"span {n} {quote!r}: offsets {start}:{end} repaired to {near}:{near + len(quote)}"
            start, end = near, near + len(quote)
        else:
            repaired = None
        if (start, end, label) in seen:
            notes.append(f"span {n} dropped: same as an earlier span")
            continue
        notes += [repaired] if repaired else []
        seen.add((start, end, label))
        conf = float(confidence[n]) if n < len(confidence) else float("nan")
        spans.append({"start": start, "end": end, "label": label, "confidence": conf, "n": n})
    # spans may not overlap (the panel shows and takes none that do): the more confident one stays
    kept: list[dict[str, Any]] = []
    for span in sorted(
        spans, key=lambda s: (-s["confidence"] if s["confidence"] == s["confidence"] else np.inf, s["n"])
    ):
        other = next((k for k in kept if span["start"] < k["end"] and k["start"] < span["end"]), None)
        if other is not None:
            notes.append(
                f"span {span['n']} {text[span['start'] : span['end']]!r} dropped: it overlaps span {other['n']} "
                f"{text[other['start'] : other['end']]!r}"
            )
            continue
        kept.append(span)
    kept = [{k: v for k, v in span.items() if k != "n"} for span in kept]
    return sorted(kept, key=lambda s: (s["start"], s["end"])), notes
