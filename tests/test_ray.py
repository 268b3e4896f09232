"""Model calls on Ray actors (runtime/ray_executor.py), against a local cluster on
127.0.0.1 that the tests start and stop: the same results and accounting as in-process,
an actor killed mid-run, per-actor base URLs, an unreachable cluster, `--ray ADDRESS`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'promptc[ray]')")

import promptc  # noqa: E402
from promptc.runtime import scripted  # noqa: E402
from promptc.runtime.engine import make_engine  # noqa: E402
from promptc.runtime.ray_executor import RayTarget, RayUnavailable, target_of  # noqa: E402
from promptc.runtime.records import CallRequest  # noqa: E402
from tests.optim.scripted_task import SOURCE, Script, data  # noqa: E402
from tests.runtime.fake_openai import FakeOpenAI  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = {"backoff": 0.01, "max_backoff": 0.02}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster (2 CPUs, on 127.0.0.1) for the module's in-process tests."""
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
        log_to_driver=False, logging_level="WARNING",
    )  # fmt: skip
    yield
    ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_evaluation_on_actors_matches_in_process_results_and_accounting(cluster, tmp_path):
    path = tmp_path / "trec.pflow"
    path.write_text(SOURCE.replace("scripted/t_", "scripted/r_"), encoding="utf-8")
    script = Script("r")
    script.register()
    train, val = data()
    rows = train + val
    here = make_engine(no_cache=True, ray="")
    there = make_engine(cache_dir=tmp_path / "cache", ray=RayTarget(actors=2), **FAST)
    try:
        assert set(there.executor.pids).isdisjoint({os.getpid()}) and len(set(there.executor.pids)) == 2
        a = promptc.evaluate(str(path), rows, engine=here)
        b = promptc.evaluate(str(path), rows, engine=there)
        assert [r.output for r in b.rows] == [r.output for r in a.rows] and b.score == a.score
        assert 0 < a.score < 1  # the task model is wrong on the "Where" rows: a real score
        assert script.calls["task"] == len(rows)  # the driver's copy answered only the in-process run
        ta, tb = here.accounting.totals(), there.accounting.totals()
        assert (tb.calls, tb.prompt_tokens, tb.completion_tokens, tb.errors) == (
            ta.calls, ta.prompt_tokens, ta.completion_tokens, ta.errors)
        c = promptc.evaluate(str(path), rows, engine=there)  # the driver's cache answers
        assert c.score == a.score and there.accounting.totals().cache_hits == len(rows)
        assert there.accounting.totals().calls == tb.calls
    finally:
        here.close()
        there.close()


def test_training_on_actors_takes_the_same_steps(cluster, tmp_path):
    path = tmp_path / "trec.pflow"
    path.write_text(SOURCE.replace("scripted/t_", "scripted/s_"), encoding="utf-8")
    Script("s").register()
    train, val = data()
    runs = {}
    for name, ray_option in (("here", ""), ("there", RayTarget(actors=2))):
        engine = make_engine(no_cache=True, ray=ray_option, **FAST)
        try:
            runs[name] = promptc.optimize(str(path), train, val, steps=2, batch_size=8, engine=engine,
                                          run_dir=tmp_path / name, max_calls=40)
            runs[name + " calls"] = engine.accounting.totals().calls
        finally:
            engine.close()
    here, there = runs["here"], runs["there"]
    assert there.scores == here.scores and there.changed == here.changed
    assert there.program.param("instruction").text == here.program.param("instruction").text
    assert runs["there calls"] == runs["here calls"] <= 40


def test_an_actor_killed_mid_run_fails_only_its_calls_in_flight(cluster):
    """kill -9 of one actor's process while 8 calls are in flight: they are retried on the
    other actor (Ray restarts the dead one meanwhile); every row is answered once."""
    model = scripted.register("slow-echo", lambda m: "echo " + m[-1]["content"], latency=0.25)
    engine = make_engine(no_cache=True, ray=RayTarget(actors=2), retries=4, **FAST)
    victim = engine.executor.pids[0]
    n = 30

    async def run():
        sem = asyncio.Semaphore(8)

        async def one(i):
            async with sem:
                return await engine.call(CallRequest(model=model, messages=({"role": "user", "content": f"q{i}"},)))

        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        await asyncio.sleep(0.6)  # the first calls are in flight on both actors
        os.kill(victim, signal.SIGKILL)
        return await asyncio.gather(*tasks)

    try:
        results = asyncio.run(run())
        t = engine.accounting.totals()
        deadline = time.monotonic() + 120
        while True:  # Ray restarts the killed actor (its __init__ imports litellm again: seconds)
            try:
                restarted = ray.get(engine.executor.actors[0].pid.remote(), timeout=120)
                break
            except ray.exceptions.ActorUnavailableError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        engine.close()
    assert restarted != victim
    assert [r.text for r in results] == [f"echo q{i}" for i in range(n)]
    assert t.calls == n and t.errors == 0
    assert t.retries >= 1  # the killed actor's calls in flight were lost and retried
    assert sum(r.attempts for r in results) == n + t.retries


def test_each_actor_sends_hosted_calls_to_its_own_server(cluster):
    with FakeOpenAI(lambda body: "from one") as one, FakeOpenAI(lambda body: "from two") as two:
        engine = make_engine(
            no_cache=True, ray=RayTarget(actors=2, api_bases=(one.base_url, two.base_url)),
            extra_params={"api_key": "sk-test-not-a-real-key-000", "api_base": "http://127.0.0.1:9/v1"},
        )  # fmt: skip

        async def run():
            return await asyncio.gather(*(
                engine.call(CallRequest(model="openai/fake", messages=({"role": "user", "content": f"q{i}"},)))
                for i in range(8)
            ))

        try:
            results = asyncio.run(run())
        finally:
            engine.close()
    assert all(r.ok for r in results), results[0].error
    assert {r.text for r in results} == {"from one", "from two"}
    assert len(one.requests) + len(two.requests) == 8 and one.requests and two.requests


def test_an_address_takes_actors_cpus_and_base_urls_from_the_environment():
    env = {"PROMPTC_RAY_ACTORS": "3", "PROMPTC_RAY_CPUS": "0.5", "PROMPTC_RAY_API_BASES": "http://a:1/v1, http://b:2/v1"}
    assert target_of("10.0.0.5:6379", env) == RayTarget("10.0.0.5:6379", 3, 0.5, ("http://a:1/v1", "http://b:2/v1"))
    assert target_of("auto", {}) == RayTarget("auto")
    given = RayTarget("local", actors=1)
    assert target_of(given, env) is given
    for bad in ({"PROMPTC_RAY_ACTORS": "many"}, {"PROMPTC_RAY_ACTORS": "0"}, {"PROMPTC_RAY_CPUS": "-1"}):
        with pytest.raises(ValueError, match="PROMPTC_RAY_"):
            target_of("auto", bad)


def test_an_unreachable_cluster_is_one_line_before_ray_is_asked(monkeypatch):
    closed = _free_port()
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def no_init(*a, **kw):
        raise AssertionError("ray.init must not be called for an address that does not answer")

    monkeypatch.setattr(ray, "init", no_init)
    t0 = time.perf_counter()
    with pytest.raises(RayUnavailable) as e:
        make_engine(no_cache=True, ray=f"127.0.0.1:{closed}")
    assert time.perf_counter() - t0 < 10
    assert str(e.value).startswith(f"cannot reach the Ray cluster at 127.0.0.1:{closed}: ") and "\n" not in str(e.value)
    with pytest.raises(RayUnavailable, match="bad Ray cluster address 'nowhere'"):
        make_engine(no_cache=True, ray="nowhere")


CLI_SOURCE = """
model task = "scripted/rules.json"
llm classify(question: text) -> text via task {
  user "Question: {question}"
}
workflow w(question: text) -> text {
  return classify(question)
}
train w { metric exact_match }
"""


def test_cli_eval_on_a_ray_cluster_started_apart(tmp_path):
    """`promptc eval --ray HOST:PORT` against `ray start --head` on 127.0.0.1: the score
    of the in-process run; a closed port is a one-line error before any call."""
    (tmp_path / "rules.json").write_text(
        '{"rules": [{"match": "Where", "reply": "LOC"}], "default": "HUM"}', encoding="utf-8")
    (tmp_path / "w.pflow").write_text("use std.metrics { exact_match }\n" + CLI_SOURCE, encoding="utf-8")
    rows = [{"question": q, "answer": a} for q, a in (
        ("Where is Oslo?", "LOC"), ("Who won?", "HUM"), ("Where is Lima?", "HUM"), ("Who ran?", "HUM"))]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PROMPTC_RAY"))}
    short = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env["RAY_TMPDIR"] = short
    env["RAY_AUTH_MODE"] = "disabled"  # a throwaway cluster on 127.0.0.1; Ray's token auth is Ray's business
    cli = [sys.executable, "-m", "promptc", "eval", "w.pflow", "--data", "d.jsonl", "--no-cache"]

    closed = _free_port()
    r = subprocess.run([*cli, "--ray", f"127.0.0.1:{closed}"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env=env)
    assert r.returncode != 0 and f"cannot reach the Ray cluster at 127.0.0.1:{closed}" in r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1

    here = subprocess.run(cli, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert here.returncode == 0, here.stderr
    port = _free_port()
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "ray-start.log").open("w"), env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
                assert head.poll() is None, (tmp_path / "ray-start.log").read_text()[-2000:]
        there = subprocess.run([*cli, "--ray", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300,
                               cwd=tmp_path, env=env)
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its cluster on SIGTERM
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of its process group is left
        except ProcessLookupError:
            pass
        head.wait(10)
        shutil.rmtree(short, ignore_errors=True)
    assert there.returncode == 0, there.stderr
    # the same summary line: score, rows, errors, calls and tokens
    assert there.stdout.strip().splitlines()[-1] == here.stdout.strip().splitlines()[-1]
    assert here.stdout.strip().splitlines()[-1].startswith("exact_match 0.750 · n=4 · errors 0 · calls 4")


def test_actors_get_the_drivers_promptc_variables_but_no_key(cluster, monkeypatch):
    monkeypatch.setenv("PROMPTC_X_MARK", "present")  # set after the cluster started: only forwarding brings it
    monkeypatch.setenv("PROMPTC_X_API_KEY", "sk-test-not-a-real-key-000")
    model = scripted.register(
        "env-echo", lambda m: f"{os.environ.get('PROMPTC_X_MARK', 'absent')},{os.environ.get('PROMPTC_X_API_KEY', 'absent')}")
    engine = make_engine(no_cache=True, ray=RayTarget(actors=1))
    try:
        r = asyncio.run(engine.call(CallRequest(model=model, messages=({"role": "user", "content": "env"},))))
    finally:
        engine.close()
    assert r.ok and r.text == "present,absent"
