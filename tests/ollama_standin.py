"""A small Ollama-API-compatible HTTP server that answers from a real GGUF model.

No Ollama binary can be installed on the test machines, so the tests of
``jlabel.llm.ollama`` talk, through the official ``ollama`` client, to this server. It runs
the real embedded model (SmolLM2-135M-Instruct) through llama-cpp-python; nothing is canned.

Served: ``GET /``, ``GET /api/tags``, ``POST /api/show``, ``POST /api/chat``,
``POST /api/generate`` and ``POST /api/embed`` (the mean of the last layer's hidden states over
the input's tokens, unit length, from a second context of the same model in embedding mode). ``stream`` defaults to true (newline-delimited JSON, the last chunk
has ``done: true``). ``format`` is ``"json"`` or a JSON schema (turned into a grammar).
``options``: ``temperature`` (default 0.8; 0 is greedy), ``seed``, ``num_ctx`` (default 2048;
a different value reloads the model), ``num_predict`` (default: until the context is full),
``top_k``, ``top_p``. ``logprobs``/``top_logprobs`` (0..20) follow Ollama's shape:
a list with one ``{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}`` per
generated token, computed from the raw logits before the grammar and sampler (as Ollama
does). An unknown model is a 404 ``{"error": "model 'x' not found"}``. Like Ollama, it keeps the
evaluated prompt and reuses its longest common prefix; ``prompt_eval_count`` counts only the
tokens evaluated anew.

Not served: pulling, tools, images, ``context`` round-trips, ``keep_alive``.
The digest in ``/api/tags`` is the sha256 of the GGUF file (Ollama's is the manifest's).
"""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import json
import os
import random
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from llama_cpp import Llama, llama_cpp
from llama_cpp._internals import LlamaSampler
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

from jlabel.llm.llamacpp import load_llama


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Engine:
    """One GGUF model behind a lock; keeps the evaluated prompt to reuse its prefix."""

    def __init__(self, path: Path, *, n_threads: int):
        self.path = Path(path)
        self.n_threads = n_threads
        self.digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.lock = threading.Lock()
        self.llm: Llama | None = None
        self._embedder: Llama | None = None
        self.load_ns = 0
        self._load(2048)
        assert self.llm is not None
        md = self.llm.metadata
        self.metadata = md
        tok = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            template=md["tokenizer.chat_template"],
            eos_token=tok.token_get_text(int(md["tokenizer.ggml.eos_token_id"])),
            bos_token=tok.token_get_text(int(md["tokenizer.ggml.bos_token_id"])),
        )

    def _load(self, n_ctx: int) -> None:
        if self.llm is not None and self.llm.n_ctx() == n_ctx:
            self.load_ns = 0
            return
        t0 = time.perf_counter_ns()
        self.llm = load_llama(self.path, n_ctx=n_ctx, n_threads=self.n_threads, verbose=False)
        self.load_ns = time.perf_counter_ns() - t0

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit-length mean-pooled vectors of ``texts`` and the tokens evaluated."""
        if self._embedder is None:
            self._embedder = load_llama(
                self.path, embedding=True, pooling_type=1, n_ctx=2048, n_threads=self.n_threads, verbose=False
            )
        vectors = [self._embedder.embed(text, normalize=True) for text in texts]
        return vectors, sum(len(self._embedder.tokenize(t.encode("utf-8"))) for t in texts)

    def details(self) -> dict[str, Any]:
        md = self.metadata
        return {
            "parent_model": "",
            "format": "gguf",
            "family": md.get("general.architecture", ""),
            "families": [md.get("general.architecture", "")],
            "parameter_size": md.get("general.size_label", ""),
            "quantization_level": self.path.stem.rsplit(".", 1)[-1],
        }

    def _piece(self, tok: int, *, special: bool) -> bytes:
        # LlamaModel.token_to_piece returns its whole 32-byte buffer; use the length
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.llm._model.vocab, tok, buf, 64, 0, special)
        return buf.raw[: max(n, 0)]

    def _token(self, tok: int) -> dict[str, Any]:
        piece = self._piece(tok, special=True)
        return {"token": piece.decode("utf-8", errors="replace"), "bytes": list(piece)}

    def generate(self, prompt: str, *, options: dict[str, Any], fmt: Any, logprobs: bool, top_logprobs: int):
        """Yield (text, logprob entry or None, final stats or None) per generated token."""
        with self.lock:
            self._load(int(options.get("num_ctx") or 2048))
            llm = self.llm
            n_ctx = llm.n_ctx()
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)[-(n_ctx - 1) :]
            t0 = time.perf_counter_ns()
            # keep the common prefix of the previous prompt in the KV cache (as Ollama does)
            old = llm.input_ids[: llm.n_tokens].tolist()
            common = next((i for i, (a, b) in enumerate(zip(old, tokens)) if a != b), min(len(old), len(tokens)))
            llm.n_tokens = cached = min(common, len(tokens) - 1)
            llm.eval(tokens[cached:])
            t1 = time.perf_counter_ns()
            sampler = self._sampler(options, fmt)
            vocab = llm._model.vocab
            limit = int(options.get("num_predict") or -1)
            limit = n_ctx - len(tokens) if limit < 0 else min(limit, n_ctx - len(tokens))
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            n_gen, reason = 0, "length"
            while n_gen < limit:
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
                tok = sampler.sample(llm._ctx, -1)
                n_gen += 1
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    reason = "stop"
                    break
                entry = None
                if logprobs or top_logprobs:
                    lp = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
                    entry = {**self._token(tok), "logprob": float(lp[tok])}
                    if top_logprobs:
                        top = np.argpartition(-lp, top_logprobs)[:top_logprobs]
                        top = top[np.argsort(-lp[top], kind="stable")]
                        entry["top_logprobs"] = [{**self._token(int(t)), "logprob": float(lp[t])} for t in top]
                yield decoder.decode(self._piece(tok, special=False)), entry, None
                if n_gen < limit:
                    llm.eval([tok])
            t2 = time.perf_counter_ns()
            yield (
                "",
                None,
                {
                    "done_reason": reason,
                    "total_duration": t2 - t0 + self.load_ns,
                    "load_duration": self.load_ns,
                    "prompt_eval_count": len(tokens) - cached,
                    "prompt_eval_duration": t1 - t0,
                    "eval_count": n_gen,
                    "eval_duration": t2 - t1,
                },
            )

    def _sampler(self, options: dict[str, Any], fmt: Any) -> LlamaSampler:
        sampler = LlamaSampler()
        if fmt:
            try:
                grammar = (
                    LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                    if fmt == "json"
                    else LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
                )
            except Exception as exc:
                raise ApiError(400, f"invalid format {fmt!r}: {exc}") from None
            sampler.add_grammar(self.llm._model, grammar)
        temp = float(options.get("temperature", 0.8))
        if temp <= 0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(int(options.get("top_k", 40)))
            sampler.add_top_p(float(options.get("top_p", 0.9)), 1)
            sampler.add_temp(temp)
            seed = options.get("seed")
            sampler.add_dist(int(seed) if seed is not None else random.getrandbits(32))
        return sampler


class StandIn(ThreadingHTTPServer):
    """The HTTP server: ``StandIn({"smollm2:latest": path}).start()`` returns its base URL."""

    daemon_threads = True

    def __init__(self, models: dict[str, Path], *, port: int = 0, n_threads: int | None = None):
        super().__init__(("127.0.0.1", port), Handler)
        threads = n_threads or min(2, os.cpu_count() or 1)
        self.models = {self._full(name): Engine(path, n_threads=threads) for name, path in models.items()}
        self.thread: threading.Thread | None = None

    @staticmethod
    def _full(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> str:
        self.thread = threading.Thread(target=self.serve_forever, name="ollama-standin", daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def engine(self, name: Any) -> Engine:
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required")
        if self._full(name) not in self.models:
            raise ApiError(404, f"model '{name}' not found")
        return self.models[self._full(name)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/tags":
            models = [
                {
                    "name": name,
                    "model": name,
                    "modified_at": _now(),
                    "size": e.path.stat().st_size,
                    "digest": e.digest,
                    "details": e.details(),
                }
                for name, e in self.server.models.items()
            ]
            self._send(200, {"models": models})
        else:
            self._send(404, {"error": f"no route for GET {self.path}"})

    def do_POST(self) -> None:
        try:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except json.JSONDecodeError as exc:
                raise ApiError(400, f"invalid JSON body: {exc}") from None
            if self.path == "/api/show":
                self._show(body)
            elif self.path in ("/api/chat", "/api/generate"):
                self._complete(body, chat=self.path == "/api/chat")
            elif self.path == "/api/embed":
                self._embed(body)
            else:
                raise ApiError(404, f"no route for POST {self.path}")
        except ApiError as exc:
            self._send(exc.status, {"error": str(exc)})

    def _show(self, body: dict[str, Any]) -> None:
        e = self.server.engine(body.get("model") or body.get("name"))
        info = {k: v for k, v in e.metadata.items() if not k.startswith("tokenizer.")}
        self._send(
            200,
            {
                "license": e.metadata.get("general.license", ""),
                "modelfile": f"FROM {e.path}",
                "parameters": "",
                "template": e.metadata["tokenizer.chat_template"],
                "details": e.details(),
                "model_info": info,
                "capabilities": ["completion"],
                "modified_at": _now(),
            },
        )

    def _embed(self, body: dict[str, Any]) -> None:
        e = self.server.engine(body.get("model"))
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "input must be a string or a list of strings")
        start = time.perf_counter_ns()
        with e.lock:
            vectors, tokens = e.embed(texts)
        spent = time.perf_counter_ns() - start
        self._send(
            200,
            {
                "model": body.get("model"),
                "embeddings": vectors,
                "total_duration": spent,
                "load_duration": 0,
                "prompt_eval_count": tokens,
            },
        )

    def _complete(self, body: dict[str, Any], *, chat: bool) -> None:
        name = body.get("model")
        e = self.server.engine(name)
        options = body.get("options") or {}
        top = int(body.get("top_logprobs") or 0)
        if not 0 <= top <= 20:
            raise ApiError(400, f"top_logprobs must be between 0 and 20, got {top}")
        if chat:
            messages = [{"role": m.get("role"), "content": m.get("content") or ""} for m in body.get("messages") or []]
        elif body.get("raw"):
            messages = None
        else:
            system = [{"role": "system", "content": body["system"]}] if body.get("system") else []
            messages = [*system, {"role": "user", "content": body.get("prompt") or ""}]
        if not chat and not body.get("prompt"):
            # Ollama answers an empty generate request by loading the model
            self._send(200, {"model": name, "created_at": _now(), "response": "", "done": True, "done_reason": "load"})
            return
        try:
            prompt = e.formatter(messages=messages).prompt if messages is not None else body.get("prompt") or ""
        except Exception as exc:
            raise ApiError(400, f"cannot apply the chat template: {exc}") from None
        parts = e.generate(
            prompt, options=options, fmt=body.get("format"), logprobs=bool(body.get("logprobs")), top_logprobs=top
        )
        stream = body.get("stream", True)
        key = "message" if chat else "response"

        def chunk(text: str, lps: list[dict[str, Any]] | None, stats: dict[str, Any] | None) -> dict[str, Any]:
            out: dict[str, Any] = {"model": name, "created_at": _now()}
            out[key] = {"role": "assistant", "content": text} if chat else text
            if lps is not None and (body.get("logprobs") or top):
                out["logprobs"] = lps
            out["done"] = stats is not None
            return {**out, **(stats or {})}

        if not stream:
            collected = list(parts)
            entries = [entry for _, entry, _ in collected if entry]
            self._send(200, chunk("".join(text for text, _, _ in collected), entries, collected[-1][2]))
            return
        first = next(parts)  # errors (bad format, ...) surface here, before the 200 is sent
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text, entry, stats in _chain(first, parts):
            line = json.dumps(chunk(text, [entry] if entry else None, stats)).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def main() -> None:  # pragma: no cover - manual use: python tests/ollama_standin.py MODEL.gguf
    import sys

    server = StandIn({"smollm2:latest": Path(sys.argv[1])}, port=int(sys.argv[2]) if len(sys.argv) > 2 else 11434)
    print(f"serving {server.url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
