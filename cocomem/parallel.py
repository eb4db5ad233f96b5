"""Many independent runs of one scenario: in this process, on local worker
processes (``--jobs N``) or on a Dask distributed cluster (``--scheduler ADDR``).

Work goes out in chunks of items and comes back in the order it went out, so
the results do not depend on what ran them. A worker process that dies is
found by running its chunk again in halves; an item that kills a worker on its
own comes back as :class:`Died`. A run longer than the timeout stops with the
engine's ``TimedOut`` (by signal in a process's main thread, by an exception
raised asynchronously in a Dask worker's thread).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CocomemError

if TYPE_CHECKING:
    from .registry import Registry
    from .scenario import LoadedScenario


@dataclass(frozen=True)
class Spec:
    """What a worker needs to load the scenario and the plugins again."""

    text: str
    path: str
    plugins: tuple[str, ...] = ()
    #: seconds one backend's run may take
    timeout: float | None = None


@dataclass(frozen=True)
class Died:
    """An item whose run killed the process that ran it."""

    message: str


#: Spec -> (registry, scenario), and plugin files -> registry, per process
_LOADED: dict[Spec, tuple[Registry, LoadedScenario]] = {}
_REGISTRIES: dict[tuple[str, ...], Registry] = {}


def seed(spec: Spec, registry: Registry, loaded: LoadedScenario) -> None:
    """Use these (already loaded) in this process, and in processes forked from it."""
    _LOADED[spec] = (registry, loaded)
    _REGISTRIES.setdefault(spec.plugins, registry)


def loaded(spec: Spec) -> tuple[Registry, LoadedScenario]:
    """The registry and scenario of ``spec`` in this process, loaded once."""
    if spec not in _LOADED:
        from .registry import load_registry
        from .scenario import parse_scenario

        if spec.plugins not in _REGISTRIES:
            _REGISTRIES[spec.plugins] = load_registry(spec.plugins)
        registry = _REGISTRIES[spec.plugins]
        _LOADED[spec] = (registry, parse_scenario(spec.text, spec.path, set(registry.vendors)))
    return _LOADED[spec]


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Outside a main thread (a Dask worker's), raise the engine's TimedOut in this
    thread after ``seconds``; in a main thread the engine's own signal does it."""
    if seconds is None or threading.current_thread() is threading.main_thread():
        yield
        return
    import ctypes

    from .engine import TimedOut

    target = threading.get_ident()
    lock = threading.Lock()
    state = {"inside": True, "fired": False}

    def expire() -> None:
        with lock:
            if state["inside"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(TimedOut))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["inside"] = False
            timer.cancel()
            if state["fired"]:  # not delivered yet: withdraw it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)


def _chunks(items: Sequence[Any], workers: int, per_worker: int = 32) -> list[list[Any]]:
    # about 32 chunks per worker: runs differ a lot in length (a backend that
    # crashes at once beside one that walks 64 GiB), so small chunks even the load
    size = max(1, min(64, -(-len(items) // (workers * per_worker))))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


class Progress:
    """A progress bar on standard error when it is a terminal (rich), else nothing."""

    def __init__(self, total: int, what: str) -> None:
        self._bar = None
        if total and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress as Bar

            self._bar = Bar(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(what, total=total)

    def __enter__(self) -> Progress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def advance(self, n: int) -> None:
        if self._bar:
            self._bar.advance(self._task, n)


class Runner:
    """Where runs go: this process, a pool of worker processes, or a Dask cluster,
    kept for every batch of one command (a context manager)."""

    def __init__(self, jobs: int = 1, scheduler: str | None = None) -> None:
        if jobs < 1:
            raise CocomemError(f"--jobs must be at least 1 (got {jobs})")
        self.jobs, self.scheduler = jobs, scheduler
        self._pool: Any = None
        self._client: Any = None

    def __enter__(self) -> Runner:
        if self.scheduler:
            self._client = _connect(self.scheduler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def run(self, fn: Callable[[Spec, list[Any]], list[Any]], spec: Spec,
            items: Sequence[Any], what: str = "runs") -> list[Any]:
        """``fn(spec, chunk)`` over ``items`` in chunks; one result per item, in order
        (:class:`Died` for an item that killed its worker)."""
        with Progress(len(items), what) as progress:
            if self._client is not None:
                return self._on_dask(fn, spec, items, progress)
            if self.jobs == 1:
                out: list[Any] = []
                for chunk in _chunks(items, 1):
                    out += fn(spec, chunk)
                    progress.advance(len(chunk))
                return out
            return self._on_processes(fn, spec, items, progress)

    def _new_pool(self, workers: int) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: the workers start with this process's registry and scenarios loaded
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))

    def _on_processes(self, fn: Callable, spec: Spec, items: Sequence[Any],
                      progress: Progress) -> list[Any]:
        from concurrent.futures.process import BrokenProcessPool

        results: dict[int, Any] = {}
        pending = list(_indexed(_chunks(items, self.jobs)))
        while pending:
            if self._pool is None:
                self._pool = self._new_pool(self.jobs)
            futures = []
            for first, chunk in pending:
                try:
                    futures.append((first, chunk, self._pool.submit(fn, spec, chunk)))
                except BrokenProcessPool:  # a worker died while the batch went out
                    futures.append((first, chunk, None))
            broken = []
            for first, chunk, future in futures:
                try:
                    if future is None:
                        raise BrokenProcessPool
                    _store(results, first, future.result())
                    progress.advance(len(chunk))
                except BrokenProcessPool:
                    broken.append((first, chunk))
            if broken:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
            pending = []
            for first, chunk in broken:
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    pending += [(first, chunk[:half]), (first + half, chunk[half:])]
                    continue
                # alone in a fresh worker: an innocent item that died with another ends
                with self._new_pool(1) as alone:
                    try:
                        _store(results, first, alone.submit(fn, spec, chunk).result())
                    except BrokenProcessPool:
                        results[first] = Died("the worker process died")
                progress.advance(1)
        return [results[i] for i in range(len(items))]

    def _on_dask(self, fn: Callable, spec: Spec, items: Sequence[Any],
                 progress: Progress) -> list[Any]:
        from distributed.scheduler import KilledWorker

        client = self._client
        results: dict[int, Any] = {}
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        # fewer chunks than for local processes: a Dask task costs milliseconds
        pending = list(_indexed(_chunks(items, workers, per_worker=8)))
        while pending:
            futures = [(first, chunk, client.submit(fn, spec, chunk, pure=False))
                       for first, chunk in pending]
            pending = []
            for first, chunk, future in futures:
                try:
                    _store(results, first, future.result())
                    progress.advance(len(chunk))
                except KilledWorker:
                    if len(chunk) == 1:
                        results[first] = Died("the Dask worker died")
                        progress.advance(1)
                    else:
                        half = len(chunk) // 2
                        pending += [(first, chunk[:half]), (first + half, chunk[half:])]
        return [results[i] for i in range(len(items))]


def _connect(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise CocomemError("--scheduler needs Dask: pip install 'cocomem[dask]'") from None
    try:
        _probe(address)
        return Client(address, timeout=10, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CocomemError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def _probe(address: str) -> None:
    """Fail at once on a TCP address nobody listens at (Dask's client retries for its
    whole timeout)."""
    import socket

    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rpartition(":")
    if scheme in ("", "tcp") and host and port.isdigit():
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()


def _indexed(chunks: list[list[Any]]) -> Iterator[tuple[int, list[Any]]]:
    first = 0
    for chunk in chunks:
        yield first, chunk
        first += len(chunk)


def _store(results: dict[int, Any], first: int, values: list[Any]) -> None:
    for offset, value in enumerate(values):
        results[first + offset] = value
