"""The openai backend against a real HTTP server on loopback (sqltune's own OpenAI-compatible app),
with the openai package as the client."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from conftest import make_school_dataset
from sqltune.errors import ModelError
from sqltune.models.backends import HFBackend
from sqltune.predict.run import PredictConfig, predict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model):
    import uvicorn

    from sqltune.serve.openai_api import create_app

    backend = HFBackend(str(tiny_model), device="cpu", precision="fp32", batch_size=1)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(backend, "tiny"), host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    t.join(timeout=10)


@pytest.fixture
def dataset(tmp_path, school_db):
    return make_school_dataset(tmp_path / "school.jsonl", school_db, n=6)


def oa(dataset, out, base_url, **kw) -> PredictConfig:
    return PredictConfig(dataset=str(dataset), out=str(out), model="tiny", backend="openai", base_url=base_url, **kw)


def test_openai_client_talks_to_the_server(server):
    import openai

    client = openai.OpenAI(base_url=server, api_key="x")
    assert [m.id for m in client.models.list().data] == ["tiny"]
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "how many teacher are there"}], max_tokens=5, temperature=0
    )
    assert isinstance(r.choices[0].message.content, str)
    assert 0 < r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 3


def test_openai_backend_gives_the_same_answers_as_hf(server, dataset, tmp_path, tiny_model):
    common = {"dataset": str(dataset), "max_new_tokens": 6}
    predict(
        PredictConfig(out=str(tmp_path / "hf.jsonl"), model=str(tiny_model), precision="fp32", **common), progress=False
    )
    s = predict(
        PredictConfig(
            out=str(tmp_path / "oa.jsonl"), model="tiny", backend="openai", base_url=server, concurrency=3, **common
        ),
        progress=False,
    )
    assert s["generated"] == 6
    hf = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "hf.jsonl").read_text().splitlines()}
    oa = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "oa.jsonl").read_text().splitlines()}
    assert hf.keys() == oa.keys()
    for k in hf:
        assert oa[k]["raw"] == hf[k]["raw"]
        assert oa[k]["prompt_tokens"] == hf[k]["prompt_tokens"]
    m = json.loads((tmp_path / "oa.manifest.json").read_text())
    assert m["backend"]["backend"] == "openai" and m["backend"]["base_url"] == server


def test_self_consistency_works_through_the_server(server, dataset, tmp_path):
    out = tmp_path / "sc.jsonl"
    predict(oa(dataset, out, server, num_samples=3, max_new_tokens=4, limit=2), progress=False)
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(len(r["candidates"]) == 3 for r in recs)


def test_unreachable_server_is_a_clear_error_and_keeps_what_was_written(server, dataset, tmp_path):
    out = tmp_path / "pred.jsonl"
    predict(oa(dataset, out, server, max_new_tokens=3, limit=2), progress=False)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    t0 = time.time()
    with pytest.raises(ModelError, match=rf"{dead}.*did not answer after 2 attempts"):
        predict(oa(dataset, out, dead, retries=1, concurrency=1, max_new_tokens=3), progress=False)
    assert time.time() - t0 < 30
    assert len(out.read_text().splitlines()) == 2


def test_n_sampled_choices_are_n_draws(server):
    import openai

    client = openai.OpenAI(base_url=server, api_key="x")
    msgs = [{"role": "user", "content": "how many teacher are there"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=12, temperature=1.5, n=4, seed=3)
    texts = [c.message.content for c in r.choices]
    assert len(texts) == 4 and len(set(texts)) > 1  # the random tiny model at T=1.5 never repeats 4 times
    again = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=12, temperature=1.5, n=4, seed=3)
    assert [c.message.content for c in again.choices] == texts  # a seed still makes it reproducible
    greedy = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=12, temperature=0, n=3)
    assert len({c.message.content for c in greedy.choices}) == 1
