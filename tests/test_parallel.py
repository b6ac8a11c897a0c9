"""run_runs_concurrently: spawned workers return what the sequential loop returns, and name failures."""

import numpy as np
import pytest

from fluxparity.backends.base import BackendError
from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.config import RunConfig
from fluxparity.params import Params
from fluxparity.parallel import run_runs_concurrently

from conftest import make_inputs


def same(a, b):
    for key in ("step_losses", "epoch_train_loss", "epoch_test_loss", "probe_predictions"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert (a.train_loss_before, a.test_loss_before, a.test_loss_after) == \
        (b.train_loss_before, b.test_loss_before, b.test_loss_after)
    for (name, va), (_, vb) in zip(a.final_params.items(), b.final_params.items()):
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

    def train(self, config, data, initial, progress=None):
        self.calls.append(config.label)
        return self.inner.train(config, data, initial, progress)


def test_concurrent_runs_equal_sequential_runs_in_order():
    data, initial = make_inputs(25, seed=2)
    tasks = [(RunConfig(a, d, epochs=2), initial) for a in ("identity", "tanh") for d in ("float32", "float64")]
    backends = {"torch": TorchBackend(), "reference": ReferenceBackend(), "local": _LocalOnly()}
    seen = []
    results = run_runs_concurrently(tasks, data, backends, workers=2, min_steps=0,
                                    progress=lambda *args: seen.append(args))
    assert len(results) == len(tasks)
    assert backends["local"].calls == [c.label for c, _ in tasks]  # trained here, in order
    for (config, init), got in zip(tasks, results):
        assert list(got) == ["torch", "reference", "local"]
        for name, backend in backends.items():
            same(got[name], backend.train(config, data, init))
    finished = {(name, label) for name, label, done, total in seen if done == total}
    assert finished == {(n, c.label) for n in backends for c, _ in tasks}


def test_short_runs_train_in_this_process(monkeypatch):
    import fluxparity.parallel as parallel

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for runs too short to gain from one")

    monkeypatch.setattr(parallel, "spawn_pool", no_pool)
    data, initial = make_inputs(15)
    tasks = [(RunConfig(a, "float64", epochs=1), initial) for a in ("identity", "tanh")]
    results = run_runs_concurrently(tasks, data, {"torch": TorchBackend(), "reference": ReferenceBackend()})
    assert [list(r) for r in results] == [["torch", "reference"]] * 2


def test_one_worker_trains_in_this_process():
    data, initial = make_inputs(15)
    tasks = [(RunConfig("identity", "float64", epochs=1), initial)]
    results = run_runs_concurrently(tasks, data, {"reference": ReferenceBackend()}, workers=1)
    same(results[0]["reference"], ReferenceBackend().train(tasks[0][0], data, initial))
    with pytest.raises(ValueError, match="workers"):
        run_runs_concurrently(tasks, data, {"reference": ReferenceBackend()}, workers=0)


def test_a_failing_run_in_a_worker_names_backend_and_run():
    data, initial = make_inputs(15)
    wrong = Params(Wi=np.zeros((2, 1)), Wh=np.zeros((2, 2)), bias=np.zeros(2))  # not the one-unit RNN
    tasks = [(RunConfig("identity", "float64", epochs=1), initial), (RunConfig("tanh", "float64", epochs=1), wrong)]
    with pytest.raises(BackendError, match=r"backend '(reference|ref2)' failed on tanh/float64: ValueError"):
        run_runs_concurrently(tasks, data, {"reference": ReferenceBackend(), "ref2": ReferenceBackend()}, workers=2,
                              min_steps=0)
