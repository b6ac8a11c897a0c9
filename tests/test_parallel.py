"""run_runs_concurrently: spawned workers return what the sequential loop returns, and name failures."""

import signal
import threading

import numpy as np
import pytest

from fluxparity.backends.base import BackendError
from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.optim import rule
from fluxparity.parallel import run_runs_concurrently

from conftest import make_inputs, tutorial_for, run_of


def same(a, b):
    for key in ("step_losses", "epoch_train_loss", "epoch_test_loss", "probe_predictions"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert (a.train_loss_before, a.test_loss_before, a.test_loss_after) == \
        (b.train_loss_before, b.test_loss_before, b.test_loss_after)
    for (name, va), (_, vb) in zip(a.final_params.arrays().items(), b.final_params.arrays().items()):
        np.testing.assert_array_equal(va, vb, err_msg=name)
    assert a.notes == b.notes


class _LocalOnly:
    """A backend that cannot be pickled (a lambda attribute): it must be trained in the parent."""

    name = "local"

    def __init__(self):
        self.inner = ReferenceBackend(jit=False)
        self.calls = []
        self.unpicklable = lambda: None

    def unavailable_reason(self):
        return None

    def train(self, run, progress=None):
        self.calls.append(run.label)
        return self.inner.train(run, progress)


def test_concurrent_runs_equal_sequential_runs_in_order():
    data, initial = make_inputs(25, seed=2)
    tasks = [run_of(data, tutorial_for(initial, a), dtype=d, epochs=2, label=f"{a}/{d}")
             for a in ("identity", "tanh") for d in ("float32", "float64")]
    backends = {"torch": TorchBackend(), "reference": ReferenceBackend(), "local": _LocalOnly()}
    seen = []
    results = run_runs_concurrently(tasks, backends, workers=2, min_steps=0,
                                    progress=lambda *args: seen.append(args))
    assert len(results) == len(tasks)
    assert backends["local"].calls == [c.label for c in tasks]  # trained here, in order
    for run, got in zip(tasks, results):
        assert list(got) == ["torch", "reference", "local"]
        for name, backend in backends.items():
            same(got[name], backend.train(run))
    finished = {(name, label) for name, label, done, total in seen if done == total}
    assert finished == {(n, c.label) for n in backends for c in tasks}


def test_short_runs_train_in_this_process(monkeypatch):
    import fluxparity.parallel as parallel

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for runs too short to gain from one")

    monkeypatch.setattr(parallel, "spawn_pool", no_pool)
    data, initial = make_inputs(15)
    tasks = [run_of(data, tutorial_for(initial, a), dtype="float64", epochs=1) for a in ("identity", "tanh")]
    results = run_runs_concurrently(tasks, {"torch": TorchBackend(), "reference": ReferenceBackend()})
    assert [list(r) for r in results] == [["torch", "reference"]] * 2


def test_one_worker_trains_in_this_process():
    data, initial = make_inputs(15)
    tasks = [run_of(data, initial, dtype="float64", epochs=1)]
    results = run_runs_concurrently(tasks, {"reference": ReferenceBackend()}, workers=1)
    same(results[0]["reference"], ReferenceBackend().train(tasks[0]))
    with pytest.raises(ValueError, match="workers"):
        run_runs_concurrently(tasks, {"reference": ReferenceBackend()}, workers=0)


def test_a_failing_run_in_a_worker_names_backend_and_run():
    data, initial = make_inputs(15)
    # the torch fast path refuses a rule other than Adam: the second run fails in its worker
    tasks = [run_of(data, initial, dtype="float64", epochs=1, label="identity/float64"),
             run_of(data, initial, dtype="float64", epochs=1, optimizer=rule("Momentum"), label="momentum/float64")]
    with pytest.raises(BackendError, match=r"backend '(torch|torch2)' failed on momentum/float64: ValueError"):
        run_runs_concurrently(tasks, {"torch": TorchBackend(path="fast"), "torch2": TorchBackend(path="fast")},
                              workers=2, min_steps=0)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX threads")
@pytest.mark.parametrize("waiting", ["result_of", "wait_any"])
def test_a_signal_received_by_another_thread_interrupts_the_wait_for_the_workers(waiting):
    # The kernel may hand a process-directed SIGTERM/SIGHUP to any thread of the process (the pool's manager
    # and queue threads too). Its Python handler runs in the main thread only when that thread executes
    # bytecode: a wait with no timeout held a sweep for as long as its workers trained (issue 17, HUP under load).
    from concurrent.futures import Future

    from fluxparity import parallel

    class Stopped(Exception):
        pass

    def handler(signum, frame):
        raise Stopped

    future = Future()
    bystander = threading.Thread(target=threading.Event().wait, args=(60,), daemon=True)
    bystander.start()
    previous = signal.signal(signal.SIGUSR1, handler)
    # The ceiling: without the fix the wait ends only here, when the "workers" finish, and the handler runs late.
    finisher = threading.Timer(60, future.set_result, ("finished",))
    finisher.start()
    threading.Timer(0.2, signal.pthread_kill, (bystander.ident, signal.SIGUSR1)).start()
    try:
        with pytest.raises(Stopped):
            parallel.result_of(future) if waiting == "result_of" else parallel.wait_any({future})
        assert not future.done(), "the handler ran only once the workers had finished"
    finally:
        finisher.cancel()
        signal.signal(signal.SIGUSR1, previous)


def test_stopping_leaves_no_queue_feeder_thread_behind():
    # A multiprocessing queue's feeder thread holds its queue. Still running at exit, it frees the queue in a
    # daemon thread that the interpreter freezes part-way, so a semaphore of the queue is unlinked but never
    # unregistered, and the resource tracker prints "leaked semaphore" warnings after "interrupted" (1 Ctrl-C
    # storm in ~35 did: tests/test_group_signals.py). Stopping the pool and leaving the relay join them.
    import time

    from fluxparity import parallel

    with parallel.relayed_progress(lambda *event: None) as pool_args:
        relay_queue = pool_args["initargs"][0]
        pool = parallel.spawn_pool(1, **pool_args)
        call_queue = pool._call_queue
        try:
            pool.submit(time.sleep, 60)  # a task in the queue, as when a Ctrl-C stops a training
        finally:
            parallel.stop_pool(pool)
        assert call_queue._thread is not None and not call_queue._thread.is_alive()
    assert relay_queue._thread is not None and not relay_queue._thread.is_alive()
