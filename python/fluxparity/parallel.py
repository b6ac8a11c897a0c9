"""Run an experiment's independent (run, backend) trainings in worker processes.

Every (activation, dtype) run of every backend is independent of the others: same data, same initial
weights, no shared state. ``run_runs_concurrently`` trains them in ``workers`` processes and returns
exactly what training them one after the other returns (the same code runs on the same inputs; only
``RunResult.seconds`` differs).

Workers are started with the ``spawn`` method, never ``fork``: a forked copy of a process that has
loaded torch (its thread pools) or Julia is not safe to use. A spawned worker imports fluxparity afresh.
Backends that cannot be pickled into a worker are trained in this process while the workers run.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Hashable, Iterator, Mapping, Optional, Sequence

from .backends.base import BackendError, RunResult
from .run import RunSpec

# progress(backend, run_label, done_steps, total_steps), from this process's threads: every run reports as
# it trains, a run in a pool worker through a queue (at most UPDATES_PER_SECOND updates a second). A progress
# object may also have phase_of(backend, run_label, text) for stages without steps ("waiting for a worker";
# the Flux backend's "starting Julia", "loading Flux"): fluxparity.progress.ProgressDisplay has both.
ExperimentProgress = Callable[[str, str, int, int], None]
UPDATES_PER_SECOND = 10

# Backends say how they want to be run, by two optional class attributes:
#   cost_rank (int, default 2): smaller first, so that two workers finish together;
#   own_process (bool): the backend already trains in a child process of its own (Flux: a Julia worker
#     in its own process group, killed on timeout), so it is driven from this process, never from a pool
#     worker — a pool worker stopped on failure must not orphan it; or it must train here (the torch
#     backend on the user's own module: its factory may come from the current folder, which workers drop).
DEFAULT_WORKERS = 2
# Starting a spawned worker (a fresh interpreter importing torch, numba's cached kernel) takes ~2 s; the
# plain torch path does ~3,000 steps a second. Below this many Adam steps per run, a pool only costs time.
MIN_STEPS_FOR_WORKERS = 10_000

# How often the main thread, while it waits for the workers, wakes to run the Python handler of a signal. The
# kernel may deliver a process-directed SIGTERM/SIGHUP to any thread (the pool's manager or queue threads
# too); its C handler only flags it, and the Python handler runs when the MAIN thread next executes bytecode.
# A wait without a timeout would never return to do so: the run would ignore the signal until it ended.
SIGNAL_POLL_SECONDS = 0.25


def result_of(future: Future):
    """``future.result()``, waiting in :data:`SIGNAL_POLL_SECONDS` slices so that a signal received by another
    thread of this process interrupts the wait (its handler runs here, and what it raises propagates)."""
    while not future.done():
        wait((future,), timeout=SIGNAL_POLL_SECONDS)
    return future.result()


def wait_any(pending):
    """``wait(pending, return_when=FIRST_COMPLETED)`` -> ``(done, not_done)``, in the same slices as
    :func:`result_of`, for the same reason."""
    while True:
        done, pending = wait(pending, timeout=SIGNAL_POLL_SECONDS, return_when=FIRST_COMPLETED)
        if done:
            return done, pending


_PARENT_POLL_SECONDS = 0.2


def _watch_parent(parent_pid: int) -> None:
    """In a pool worker: end this process as soon as its parent is gone (even killed with SIGKILL).

    A worker whose parent died is reparented (to init or a subreaper), so ``getppid`` changes; a daemon
    thread polls it. Also drops the current folder from ``sys.path`` (a spawned child starts with it first),
    so that no module of the user's current folder is imported in place of a library.
    """
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="fluxparity-parent-watch", daemon=True).start()


# Signals a terminal sends to the whole process group (Ctrl-C, closing it). The parent handles them and stops
# the workers itself (stop_pool); a worker or the resource tracker that also reacted would die mid-way and
# print tracebacks (the tracker's KeyError for every semaphore it lost track of).
_GROUP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGHUP") if hasattr(signal, n))


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once) with the group signals blocked, as it blocks SIGINT
    and SIGTERM itself: a blocked mask is inherited, so a SIGHUP to the group never kills it."""
    from multiprocessing import resource_tracker

    if not hasattr(signal, "pthread_sigmask"):
        resource_tracker.ensure_running()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ignore_group_signals() -> None:
    """In a pool worker: Ctrl-C and a hang-up reach the whole group; the parent stops this worker instead."""
    for signum in _GROUP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)


class _GroupDeafProcess(multiprocessing.get_context("spawn").Process):
    """A spawned process that starts with the group signals blocked (the mask is inherited), so that a
    Ctrl-C while it imports cannot interrupt it; :func:`_ignore_group_signals` then ignores and unblocks them."""

    def start(self) -> None:
        # A group signal caught by another thread still runs its Python handler in the main thread; raised
        # between the child's spawn and the write of its start-up data, it would leave a child that prints
        # an EOFError traceback. So the main thread only notes it here and re-raises it once the child has
        # its data (and is one of multiprocessing's children, which stop_pool stops).
        deferred: list = []
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _GROUP_SIGNALS:
                handlers[signum] = signal.signal(signum, lambda n, frame: deferred.append(n))
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS) if hasattr(signal, "pthread_sigmask") \
            else None
        try:
            super().start()
        finally:
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            for signum, handler in handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)
        if deferred:
            signal.raise_signal(deferred[0])


class _SpawnContext(type(multiprocessing.get_context("spawn"))):
    Process = _GroupDeafProcess


def _init_worker(parent_pid: int, initializer: Optional[Callable], initargs: tuple) -> None:
    _ignore_group_signals()
    _watch_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(workers: int, initializer: Optional[Callable] = None, initargs: tuple = ()):
    """A process pool of ``workers`` spawned (never forked) processes that end when this process ends.

    ``initializer(*initargs)`` (e.g. :func:`relayed_progress`'s) runs in each worker after the parent watch.
    """
    from concurrent.futures import ProcessPoolExecutor

    _start_resource_tracker()
    return ProcessPoolExecutor(max_workers=workers, mp_context=_SpawnContext(),
                               initializer=_init_worker, initargs=(os.getpid(), initializer, initargs))


def stop_pool(pool) -> None:
    """Stop every worker of ``pool`` now (a failure or a signal must not wait for the others to finish)."""
    # The queue's feeder thread may be blocked writing a task to workers about to be gone; shutting down
    # would then wait for it forever (a known trap of ProcessPoolExecutor). Never wait for it, and close
    # the pipe's reading end so that its write fails and the thread ends.
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        call_queue.cancel_join_thread()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    # A worker whose start was interrupted by a signal is not in the pool's table yet, but it is a child.
    processes += [p for p in multiprocessing.active_children()
                  if isinstance(p, _GroupDeafProcess) and p not in processes]
    for process in processes:
        try:
            process.terminate()
        except (OSError, ValueError):
            pass
    for process in processes:
        try:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        except (OSError, ValueError, AssertionError):
            pass
    reader = getattr(call_queue, "_reader", None)
    if reader is not None:
        try:
            reader.close()
        except OSError:
            pass
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except RuntimeError:  # stopped while it was starting (a signal during submit): nothing left to join
        pass
    if call_queue is not None:
        _release_queue(call_queue)


# How long a queue's feeder thread may take to end once its queue is closed (it only has a sentinel to pass on).
_FEEDER_JOIN_SECONDS = 5.0


def _release_queue(queue) -> None:
    """Close a multiprocessing ``queue`` and wait (at most :data:`_FEEDER_JOIN_SECONDS`) for its feeder thread.

    The feeder thread holds the queue (through its error hook). Left running, it ends only at exit, on the
    sentinel of the queue's exit finalizer, and frees the queue there: the finalizers of the queue's named
    semaphores then run in that daemon thread, which the interpreter freezes part-way while the main thread
    exits. A semaphore unlinked but never unregistered, or never unlinked, makes multiprocessing's resource
    tracker print "leaked semaphore" warnings after the run's last line (1 Ctrl-C storm in ~35 did, issue 17
    item 15). Joined here, the feeder is gone and the queue dies in the thread that drops it."""
    try:
        queue.close()
    except (OSError, ValueError):
        pass
    feeder = getattr(queue, "_thread", None)
    if feeder is not None and feeder is not threading.current_thread():
        feeder.join(_FEEDER_JOIN_SECONDS)


MAX_WARNINGS = 10  # distinct warnings kept per training (a diverging run repeats the same few)


def _train(backend, run: RunSpec, progress=None) -> RunResult:
    """One training, in a worker (or here: always the main thread). Module-level so that spawned workers can
    import it. Python warnings raised while training (NumPy's RuntimeWarnings of a diverging run) are kept in
    the result's ``notes["warnings"]`` (in report.json), never printed over the progress display."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = backend.train(run, progress)
    found = _distinct_warnings(caught)
    if found:
        result.notes["warnings"] = found
    return result


def _distinct_warnings(caught) -> list[str]:
    """``"RuntimeWarning: overflow encountered in matmul (models/_reference.py:76)"``, each once, at most
    :data:`MAX_WARNINGS` (then a count of the rest)."""
    seen: dict[str, int] = {}
    for w in caught:
        where = "/".join(Path(w.filename).parts[-2:])
        text = " ".join(f"{w.category.__name__}: {w.message} ({where}:{w.lineno})".split())[:300]
        seen[text] = seen.get(text, 0) + 1
    lines = [text if n == 1 else f"{text} x{n}" for text, n in list(seen.items())[:MAX_WARNINGS]]
    if len(seen) > MAX_WARNINGS:
        lines.append(f"... and {len(seen) - MAX_WARNINGS} other warnings")
    return lines


# ------------------------------------------------------------------ progress from pool workers

_EVENTS = None  # in a pool worker: the queue its trainings report progress on (set by _listen)
_UPDATES_PER_SECOND = UPDATES_PER_SECOND  # in a pool worker: the parent's UPDATES_PER_SECOND


def _listen(queue, updates_per_second: float) -> None:
    """Pool initializer: a queue reaches a spawned worker only this way (as a Process argument)."""
    global _EVENTS, _UPDATES_PER_SECOND
    _EVENTS, _UPDATES_PER_SECOND = queue, updates_per_second


class _Reporter:
    """A backend's ``progress(done, total)`` (and ``.phase(text)``) in a pool worker: events on the queue,
    tagged with ``key``, at most ``updates_per_second`` step updates a second (the last one always)."""

    def __init__(self, queue, key: Hashable, updates_per_second: float = UPDATES_PER_SECOND) -> None:
        self.queue, self.key, self.last = queue, key, -float("inf")
        self.interval = 1 / updates_per_second

    def __call__(self, done, total) -> None:
        now = time.monotonic()
        if done < total and now - self.last < self.interval:
            return
        self.last = now
        self.queue.put(("steps", self.key, done, total))

    def phase(self, text: str) -> None:
        self.queue.put(("phase", self.key, text))


def worker_progress(key: Hashable) -> Optional[_Reporter]:
    """In a pool worker started under :func:`relayed_progress`: a reporter for ``key``; else None."""
    return None if _EVENTS is None else _Reporter(_EVENTS, key, _UPDATES_PER_SECOND)


@contextmanager
def relayed_progress(on_steps: Optional[Callable], on_phase: Optional[Callable] = None) -> Iterator[dict]:
    """Pool arguments (``initializer``, ``initargs``) that give every worker a queue, and a thread here that
    hands each worker event on: ``on_steps(key, done, total)``, ``on_phase(key, text)``. Nothing when
    ``on_steps`` is None."""
    if on_steps is None:
        yield {}
        return
    _start_resource_tracker()
    queue = multiprocessing.get_context("spawn").Queue()

    def relay() -> None:
        while (event := queue.get()) is not None:
            kind, key, *rest = event
            handler = on_steps if kind == "steps" else on_phase
            if handler is not None:
                handler(key, *rest)

    thread = threading.Thread(target=relay, name="fluxparity-progress", daemon=True)
    thread.start()
    try:
        yield {"initializer": _listen, "initargs": (queue, UPDATES_PER_SECOND)}
    finally:
        queue.put(None)
        thread.join(timeout=5)
        _release_queue(queue)


def _train_pooled(key: tuple[int, str], backend, run: RunSpec) -> RunResult:
    """``_train`` in a pool worker, reporting its progress under ``key = (task index, backend name)``."""
    report = worker_progress(key)
    if report is not None:
        report(0, run.total_steps)
    return _train(backend, run, report)


class _RunProgress:
    """One run's ``progress(done, total)`` and ``.phase(text)``, in this process."""

    def __init__(self, progress, name: str, label: str) -> None:
        self.progress, self.name, self.label = progress, name, label

    def __call__(self, done, total) -> None:
        self.progress(self.name, self.label, done, total)

    def phase(self, text: str) -> None:
        phase_of = getattr(self.progress, "phase_of", None)
        if phase_of is not None:
            phase_of(self.name, self.label, text)


def _named_error(name: str, config: RunSpec, exc: BaseException) -> BackendError:
    if isinstance(exc, BackendError):
        return exc
    return BackendError(f"backend {name!r} failed on {config.label}: {type(exc).__name__}: {exc}")


def _poolable(backend) -> bool:
    """Whether a pool worker may train ``backend``: not if it runs its own process, nor if it cannot be pickled."""
    if getattr(backend, "own_process", False):
        return False
    try:
        pickle.dumps(backend)
    except Exception:  # noqa: BLE001 — any reason at all means: train it in this process
        return False
    return True


def run_runs_concurrently(tasks: Sequence[RunSpec],
                          backends: Mapping[str, object], *, workers: int = DEFAULT_WORKERS,
                          progress: Optional[ExperimentProgress] = None,
                          min_steps: int = MIN_STEPS_FOR_WORKERS) -> list[dict[str, RunResult]]:
    """Train every run description in ``tasks`` in every backend, ``workers`` trainings at a time.

    Returns one ``{backend name: RunResult}`` per task, in the order of ``tasks``, backends in the order
    of ``backends`` — what the sequential loop in ``run_experiment`` builds. A failing training raises
    :class:`BackendError` naming the backend and the run (as the sequential loop does); the trainings
    not yet started are cancelled. ``workers=1``, or runs of fewer than ``min_steps`` steps
    (epochs x batches per epoch, the largest run counts), train everything in this process.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    jobs = [(t, name) for t in range(len(tasks)) for name in backends]
    total = {t: run.total_steps for t, run in enumerate(tasks)}
    results: list[dict[str, RunResult]] = [{} for _ in tasks]

    def started(t: int, name: str) -> None:
        if progress is not None:
            progress(name, tasks[t].label, 0, total[t])

    def finished(t: int, name: str, result: RunResult) -> None:
        results[t][name] = result
        if progress is not None:
            progress(name, tasks[t].label, total[t], total[t])

    def run_here(t: int, name: str) -> None:
        config = tasks[t]
        started(t, name)
        report = None if progress is None else _RunProgress(progress, name, config.label)
        try:
            result = _train(backends[name], config, report)
        except Exception as exc:
            raise _named_error(name, config, exc) from exc
        finished(t, name, result)

    steps = max(total.values(), default=0)
    pooled = [job for job in jobs if workers > 1 and steps >= min_steps and _poolable(backends[job[1]])]
    local = [job for job in jobs if job not in pooled]
    if len(pooled) <= 1:  # nothing to gain from a pool
        local, pooled = jobs, []

    if pooled:
        pooled.sort(key=lambda job: getattr(backends[job[1]], "cost_rank", 2))  # stable: runs keep their order
        on_steps = on_phase = None  # a worker's events, keyed (task index, backend name)
        if progress is not None:
            def on_steps(key, done, steps):
                progress(key[1], tasks[key[0]].label, done, steps)

            def on_phase(key, text):
                _RunProgress(progress, key[1], tasks[key[0]].label).phase(text)
        with relayed_progress(on_steps, on_phase) as pool_progress, \
                spawn_pool(min(workers, len(pooled)), **pool_progress) as pool:
            futures: dict[Future, tuple[int, str]] = {}
            try:
                for t, name in pooled:
                    config = tasks[t]
                    if progress is not None:  # before submitting: the worker's first update replaces it
                        _RunProgress(progress, name, config.label).phase("waiting for a worker")
                    futures[pool.submit(_train_pooled, (t, name), backends[name], config)] = (t, name)
                for t, name in local:  # unpicklable backends: here, while the workers train
                    run_here(t, name)
                pending = set(futures)
                while pending:
                    done, pending = wait_any(pending)  # wakes for signals other threads received
                    for future in done:
                        t, name = futures[future]
                        exc = future.exception()
                        if exc is not None:
                            raise _named_error(name, tasks[t], exc) from exc
                        finished(t, name, future.result())
            except BaseException:
                # Report the failure now, not when the other trainings would have finished: stop the workers.
                stop_pool(pool)
                raise
    else:
        for t, name in local:
            run_here(t, name)

    # backends in the caller's order, whatever order the trainings finished in
    return [{name: results[t][name] for name in backends} for t in range(len(tasks))]
