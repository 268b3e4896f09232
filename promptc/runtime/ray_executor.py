"""Model calls on Ray actors: `make_engine(ray=...)`, `promptc eval --ray ADDRESS`.

    engine = make_engine(ray="local")                       # a local Ray cluster, started here
    engine = make_engine(ray="10.0.0.5:6379")                # an existing cluster (its GCS address)
    engine = make_engine(ray=RayTarget("auto", actors=8, api_bases=("http://gpu1:8000/v1", ...)))

`RayExecutor` is the engine's executor (executor.py) when Ray is asked for: it starts
`actors` Ray actors (`CallActor`), each holding an Engine built in the actor's process
through the public runtime API (the engine factory the driver gives it), and sends each
attempt of a model call to one of them: the embedded model (a GGUF loaded once per
actor, by local.py's pool in that process), hosted providers (litellm in the actor, on
the actor's engine's threads), the scripted engine (the driver's registered function
goes along, pickled by value where it is not importable). Everything else stays in the
driver, in the Engine that holds this executor: cache, retries, deadlines, circuit
breaker, accounting; and the interpreter, optimizer and budgets above it. So a run on
Ray gives the results, call counts, cache hits and budget stops of an in-process run.

Addresses (`RayTarget.address`, `--ray`, PROMPTC_RAY_ADDRESS):
- "local": start a Ray cluster on this machine for this run (on 127.0.0.1; stopped by
  `close`);
- "auto": the cluster `ray start` runs on this machine (or RAY_ADDRESS);
- "HOST:PORT": an existing cluster's GCS address (`ray start --head` prints it; in a
  KubeRay cluster, the head service's port 6379), from a node of that cluster or
  anywhere that can reach it; "ray://HOST:10001" (Ray Client) also works where
  `ray[client]` is installed.
A cluster started with token authentication (Ray's default for `ray start` where a token
exists, ~/.ray/auth_token) takes drivers with RAY_AUTH_MODE=token set; Ray reads it.
A HOST:PORT that does not answer a TCP connection within CONNECT_SECONDS is a one-line
`RayUnavailable` before any call (Ray itself would retry for minutes); so is a cluster
whose actors do not start within START_SECONDS.

Actors: `actors` (default: the cluster's CPUs divided by `cpus`, at least 1; with an
address string, PROMPTC_RAY_ACTORS, PROMPTC_RAY_CPUS and PROMPTC_RAY_API_BASES set
`actors`, `cpus` and `api_bases`), each reserving `cpus` CPUs. An actor's embedded model
gets as many single-threaded instances (PROMPTC_LOCAL_INSTANCES and
PROMPTC_LOCAL_THREADS=1, unless set: local.py would give one instance all the node's
cores, and llama.cpp threads beyond the free cores starve). The driver's PROMPTC_*
variables are given to every actor (the embedded model's file, threads, context),
except any whose name says it holds a key (`*_KEY`, `*TOKEN*`, ...): Ray keeps an
actor's creation arguments. Actor k sends hosted calls to `api_bases[k % len(api_bases)]`
when given (one model server per actor, or a few shared: replicas of llama.cpp / vLLM
servers), else where the call says. Prices given to `providers.register_price` before
the actors start are registered in them too.

Faults: each attempt goes to the live actor with the fewest attempts in flight. An actor
that dies (its process killed, its node lost) fails only its attempts in flight, with a
retryable ConnectionError: the engine retries them, and the retry goes to another actor.
Ray restarts a dead actor (MAX_RESTARTS times); until it answers again it gets no work.
An actor that does not come back (more than MAX_RESTARTS + 1 probes failed) is replaced by
a new one (as many times as there are actors). Actor attempts are never retried by Ray
itself (max_task_retries 0): every attempt the engine counts is one the provider saw at
most once.

Ray is an optional dependency (`pip install 'promptc[ray]'`): this module imports it,
and nothing imports this module unless Ray is asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from attrs import evolve, frozen

from promptc.runtime import providers, scripted
from promptc.runtime.executor import Attempt, ExecutorUnavailable, Failed, per_loop
from promptc.runtime.failures import one_line, remember_secrets, secret_name
from promptc.runtime.wire import Answer

try:
    import ray
    import ray.exceptions
except ImportError as e:  # pragma: no cover - the extra is installed by `make test`
    raise ImportError(f"Ray is not installed: pip install 'promptc[ray]' ({e})") from e

log = logging.getLogger(__name__)

CONNECT_SECONDS = 5.0  # a cluster address that takes no TCP connection by then is unreachable
START_SECONDS = 180.0  # actors that have not started by then (imported litellm) are broken
MAX_RESTARTS = 3  # Ray restarts a dead actor this many times
REMOTE_GRACE = 30.0  # the driver waits an attempt's timeout plus this for its actor's answer
FORWARDED_ENV = ("PROMPTC_", "LITELLM_LOCAL_MODEL_COST_MAP")


class RayUnavailable(ExecutorUnavailable):
    """The Ray cluster cannot be reached or its actors cannot start (one line)."""


@frozen
class RayTarget:
    """Where and how many actors: see the module doc."""

    address: str = "local"
    actors: int | None = None
    cpus: float = 1.0
    api_bases: tuple[str, ...] = ()


def target_of(ray_option: str | RayTarget, environ: dict[str, str] | None = None) -> RayTarget:
    """A RayTarget from `--ray` / `ray=`: a RayTarget as it is; an address string with
    PROMPTC_RAY_ACTORS, PROMPTC_RAY_CPUS and PROMPTC_RAY_API_BASES (comma-separated)
    from the environment, where set."""
    if isinstance(ray_option, RayTarget):
        return ray_option
    if not isinstance(ray_option, str) or not ray_option.strip():
        raise ValueError(f"ray: expected a cluster address or a RayTarget, got {ray_option!r}")
    env = os.environ if environ is None else environ
    try:
        actors = int(env["PROMPTC_RAY_ACTORS"]) if env.get("PROMPTC_RAY_ACTORS", "").strip() else None
        cpus = float(env["PROMPTC_RAY_CPUS"]) if env.get("PROMPTC_RAY_CPUS", "").strip() else 1.0
    except ValueError as e:
        raise ValueError(f"PROMPTC_RAY_ACTORS / PROMPTC_RAY_CPUS: {e}") from None
    if (actors is not None and actors < 1) or cpus <= 0:
        raise ValueError("PROMPTC_RAY_ACTORS must be at least 1 and PROMPTC_RAY_CPUS above 0")
    bases = tuple(b.strip() for b in env.get("PROMPTC_RAY_API_BASES", "").split(",") if b.strip())
    return RayTarget(address=ray_option.strip(), actors=actors, cpus=cpus, api_bases=bases)


class CallActor:
    """One Ray actor: an Engine in its own process, running the attempts it is sent."""

    def __init__(
        self, factory: Callable[[], Any], environ: dict[str, str], api_base: str | None,
        prices: dict[str, tuple[float, float]],
    ) -> None:
        for name, value in environ.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        self.engine = factory()
        self.api_base = api_base
        providers.ensure_litellm()  # imported at start, not on the first call
        for model, (inp, out) in prices.items():
            providers.register_price(model, inp, out)

    def pid(self) -> int:
        return os.getpid()

    async def run(self, attempt: Attempt, script: tuple | None) -> Answer | Failed:
        if script is not None:
            name, fn, latency = script
            scripted.register(name, fn, latency=latency)
        if self.api_base and attempt.hosted:
            attempt = evolve(attempt, kwargs={**attempt.kwargs, "api_base": self.api_base})
        remember_secrets(attempt.kwargs)  # so that this process's errors mask them too
        try:
            return await self.engine.attempt(attempt)
        except Exception as e:
            return Failed.of(e)

    def close(self) -> None:
        self.engine.close()


class RayExecutor:
    """The engine's executor on Ray actors (module doc). `factory()` builds each actor's
    Engine (in the actor); `threads` bounds the hosted attempts in flight from here."""

    def __init__(self, target: RayTarget, factory: Callable[[], Any], threads: int) -> None:
        self.target = target
        self.threads = max(1, int(threads))
        self._factory = factory
        self._lock = threading.Lock()
        self._slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._scripts: dict[str, tuple[Any, Any]] = {}  # scripted name -> (fn, object ref)
        self._started_ray = connect(target.address)
        try:
            self.actors: list[Any] = []
            self._in_flight: list[int] = []
            self._down: list[Any] = []  # per actor: None, or the probe that says it answers again
            self._failed_probes: list[int] = []
            self._replaced = 0
            count = target.actors or max(1, int(_cluster_cpus() // max(target.cpus, 0.01)))
            for k in range(count):
                self.actors.append(self._start(k))
                self._in_flight.append(0)
                self._down.append(None)
                self._failed_probes.append(0)
            self.pids = self._wait_started(self.actors)
        except BaseException:
            self.close()
            raise

    # --- the executor -----------------------------------------------------------------------

    async def run(self, attempt: Attempt) -> Answer:
        if attempt.hosted:
            async with per_loop(self._slots, self.threads):
                return await self._run(attempt)
        return await self._run(attempt)

    async def _run(self, attempt: Attempt) -> Answer:
        script = self._script(attempt.model)
        k, actor = self._pick()  # counted in flight from here
        timeout = None if attempt.timeout is None else attempt.timeout + REMOTE_GRACE
        try:
            ref = actor.run.remote(attempt, script)
            out = await asyncio.wait_for(_awaitable(ref), timeout)
        except ray.exceptions.RayActorError as e:
            self._lost(k, actor)
            raise ConnectionError(f"Ray actor {k} failed: {one_line(str(e), 200)}") from None
        finally:
            with self._lock:
                self._in_flight[k] -= 1
        if isinstance(out, Failed):
            raise out.error()
        return out

    def close(self) -> None:
        """Stop the actors, and the Ray cluster if this executor started it."""
        actors, self.actors = list(getattr(self, "actors", [])), []
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception as e:  # already gone
                log.debug("ray.kill: %s", e)
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    # --- actors -----------------------------------------------------------------------------

    def _start(self, k: int) -> Any:
        t = self.target
        # never a key: Ray keeps an actor's creation arguments in its cluster's metadata
        env = {n: v for n, v in os.environ.items() if n.startswith(FORWARDED_ENV) and not secret_name(n)}
        env.setdefault("PROMPTC_LOCAL_INSTANCES", str(max(1, int(t.cpus))))
        env.setdefault("PROMPTC_LOCAL_THREADS", "1")  # one single-threaded instance per CPU, as local.py's default
        base = t.api_bases[k % len(t.api_bases)] if t.api_bases else None
        cls = ray.remote(CallActor).options(
            num_cpus=t.cpus, max_restarts=MAX_RESTARTS, max_task_retries=0, max_concurrency=1000,
        )
        return cls.remote(self._factory, env, base, providers.registered_prices())

    def _wait_started(self, actors: list[Any]) -> list[int]:
        try:
            return ray.get([a.pid.remote() for a in actors], timeout=START_SECONDS)
        except ray.exceptions.GetTimeoutError:
            raise RayUnavailable(
                f"Ray actors did not start within {START_SECONDS:g}s (does the cluster have "
                f"{self.target.cpus:g} free CPUs per actor, and promptc installed on its nodes?)"
            ) from None
        except ray.exceptions.RayError as e:
            raise RayUnavailable(f"Ray actors could not start: {one_line(str(e), 300)}") from None

    def _pick(self) -> tuple[int, Any]:
        """The live actor with the fewest attempts in flight (counted in)."""
        with self._lock:
            if not self.actors:
                raise ConnectionError("the Ray executor is closed")
            for k, probe in enumerate(self._down):
                if probe is not None:
                    self._check(k, probe)
            live = [k for k in range(len(self.actors)) if self._down[k] is None] or list(range(len(self.actors)))
            k = min(live, key=lambda j: self._in_flight[j])
            self._in_flight[k] += 1
            return k, self.actors[k]

    def _check(self, k: int, probe: Any) -> None:
        """Under the lock: a down actor whose probe answered is live again; one Ray is
        restarting is asked again; one whose probes found it dead more than
        MAX_RESTARTS + 1 times is replaced by a new one."""
        ready, _ = ray.wait([probe], timeout=0)
        if not ready:
            return
        try:
            ray.get(probe, timeout=0)
        except ray.exceptions.ActorUnavailableError:  # Ray is restarting it: ask again
            self._down[k] = self.actors[k].pid.remote()
            return
        except ray.exceptions.RayError:
            self._failed_probes[k] += 1
            if self._failed_probes[k] > MAX_RESTARTS + 1 and self._replaced < len(self.actors):
                self._replaced += 1
                self._failed_probes[k] = 0
                log.warning("Ray actor %d does not come back: starting another", k)
                self.actors[k] = self._start(k)
            self._down[k] = self.actors[k].pid.remote()
            return
        self._failed_probes[k] = 0
        self._down[k] = None

    def _lost(self, k: int, actor: Any) -> None:
        with self._lock:
            if k < len(self.actors) and self.actors[k] is actor and self._down[k] is None:
                log.info("Ray actor %d is lost; its attempts in flight are retried elsewhere", k)
                self._down[k] = actor.pid.remote()  # answers once Ray has restarted it

    def _script(self, model: str) -> Any:
        """For a scripted model: what answers it here (a registered function, or a rules
        file read here, relative to this working directory), as an object ref put once;
        None for any other model."""
        if not model.startswith("scripted/"):
            return None
        name = model.split("/", 1)[1]
        entry = scripted.entry(name)
        if entry is None:
            if not name.endswith((".json", ".toml")):
                return None  # the actor says that no such engine is registered
            try:
                entry = (scripted.load_rules(name).answer, 0.0)
            except scripted.ScriptError:
                return None  # the actor's attempt says what is wrong with the file
        fn, latency = entry
        identity = getattr(fn, "__self__", fn)  # a rule set's bound method: the rule set
        with self._lock:
            known = self._scripts.get(name)
            if known is not None and known[0] is identity:
                return known[1]
            _by_value(fn)
            ref = ray.put((name, fn, latency))
            self._scripts[name] = (identity, ref)
            return ref


def connect(address: str) -> bool:
    """Join (or start, for "local") the Ray cluster at `address`; whether it was started
    here. An address that does not answer is a RayUnavailable."""
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
    if address == "local":
        # a cluster of this run's own: Ray's notice that it enabled token auth is noise here
        notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = notice.level
        notice.setLevel(logging.ERROR)
        try:
            ray.init(address="local", _node_ip_address="127.0.0.1", **quiet)
        finally:
            notice.setLevel(level)
        return True
    if address != "auto":
        _reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        hint = ""
        if "RAY_AUTH_MODE" not in os.environ:  # Ray >= 2.52 clusters started with a token refuse drivers without one
            hint = " (if the cluster uses token authentication, set RAY_AUTH_MODE=token)"
        raise RayUnavailable(f"cannot join the Ray cluster at {address}: {one_line(str(e), 300)}{hint}") from None
    return address.startswith("ray://")  # a Ray Client connection is ours to end


def _reachable(address: str) -> None:
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"bad Ray cluster address {address!r}: expected HOST:PORT, 'local' or 'auto'")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as e:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _cluster_cpus() -> float:
    try:
        return float(ray.cluster_resources().get("CPU", 1.0))
    except Exception as e:  # an old cluster, a client connection: one actor
        log.debug("the cluster's CPUs are unknown (%s): starting one actor", e)
        return 1.0


def _by_value(fn: Any) -> None:
    """Have Ray pickle `fn` by value when its module is not installed (a test file, a
    script): the actors could not import it."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__ == "__main__" or module.__name__.startswith("promptc"):
        return
    if any(path.startswith(p) for p in _installed_dirs()):
        return
    try:
        ray.cloudpickle.register_pickle_by_value(module)
    except (ValueError, TypeError) as e:  # a package submodule cloudpickle refuses
        log.debug("cannot pickle %s by value: %s", module.__name__, e)


def _installed_dirs() -> tuple[str, ...]:
    import site
    import sysconfig

    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], *site.getsitepackages()}
    return tuple(d for d in dirs if d)


def _awaitable(ref: Any) -> Any:
    """An ObjectRef as an awaitable of the running loop (Ray's own, from any loop)."""
    return asyncio.wrap_future(ref.future())


__all__ = ["CallActor", "RayExecutor", "RayTarget", "RayUnavailable", "connect", "target_of"]
