"""The one interface every backend implements, and the result every backend returns.

Comparison and report code see only :class:`RunResult`; they never learn which framework produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np

from ..models import Chain, flat_params
from ..run import RunSpec

# progress(done_steps, total_steps): called now and then while training.
Progress = Callable[[int, int], None]


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says why and what to do about it."""


class BackendError(RuntimeError):
    """The backend started but failed; the message names the failure (e.g. a Julia exception)."""


class ModuleError(BackendError):
    """The user's own torch module (``TorchBackend(module_factory=...)``) failed or does not fit the run: its
    factory or forward raised (or called ``sys.exit``), it is not an ``nn.Module``, its parameters cannot hold
    the run's model, or its output has the wrong shape. The message says which in one line; ``template`` (may
    be empty) is a ready-to-edit mapping (``fluxparity.models._match.mapping_template``) when the parameters
    could not be matched. The command line exits 2 for it (the user's input), not 3."""

    def __init__(self, message: str, template: str = "") -> None:
        super().__init__(message)
        self.template = template


def epoch_sums(step_losses: np.ndarray, epochs: int) -> np.ndarray:
    """Each epoch's step losses added one after the other in float64, in training order.

    The reference's kernel and the Julia side (``+=`` in a loop) add that way; NumPy's ``sum`` adds
    pairwise, which differs by ~1e-12 on 1000 losses and would show up as a difference between backends
    whose every step loss is identical. ``cumsum`` is a sequential sum.
    """
    per_epoch = np.asarray(step_losses, dtype=np.float64).reshape(epochs, -1)
    return np.cumsum(per_epoch, axis=1)[:, -1] if per_epoch.shape[1] else np.zeros(epochs)


@dataclass
class RunResult:
    """What one backend measured in one run. Arrays are float64 whatever the run's dtype.

    Loss sums add per-sample losses (each computed in the run's dtype) in float64, so that summation
    order never shows up as a difference between backends (see :mod:`fluxparity.run`).
    """

    step_losses: np.ndarray  # (total steps,): each step's batch loss, before that step's update
    epoch_train_loss: np.ndarray  # (epochs,): sum of that epoch's step losses
    epoch_test_loss: np.ndarray  # (epochs,): test-set loss sum after each epoch
    train_loss_before: float  # train-set loss sum before training
    test_loss_before: float  # test-set loss sum before training
    test_loss_after: float  # test-set loss sum after the last epoch
    final_params: Chain  # the trained model, float64, the initial Chain's structure
    # The model's readout on each probe after training, flattened sample after sample (each sample's
    # (out,) or (len, out), C order): (n_probes * out,) for readout "last"
    probe_predictions: np.ndarray
    seconds: float  # wall time of training and evaluation inside the backend
    notes: dict = field(default_factory=dict)  # backend-specific facts worth printing (versions, options)

    @classmethod
    def from_training(cls, *, step_losses: np.ndarray, epoch_test_loss: np.ndarray, train_loss_before: float,
                      test_loss_before: float, final_params, probe_predictions: np.ndarray, seconds: float,
                      notes: dict) -> "RunResult":
        """A result from what a training loop records; the epoch sums and the loss after are derived here."""
        epochs = len(epoch_test_loss)
        return cls(
            step_losses=step_losses,
            epoch_train_loss=epoch_sums(step_losses, epochs),
            epoch_test_loss=epoch_test_loss,
            train_loss_before=float(train_loss_before),
            test_loss_before=float(test_loss_before),
            test_loss_after=float(epoch_test_loss[-1]),
            final_params=final_params,
            probe_predictions=probe_predictions,
            seconds=seconds,
            notes=notes,
        )

    def to_dict(self) -> dict:
        return {
            "step_losses": self.step_losses.tolist(),
            "epoch_train_loss": self.epoch_train_loss.tolist(),
            "epoch_test_loss": self.epoch_test_loss.tolist(),
            "train_loss_before": float(self.train_loss_before),
            "test_loss_before": float(self.test_loss_before),
            "test_loss_after": float(self.test_loss_after),
            "final_params": {k: v.tolist() for k, v in flat_params(self.final_params).items()},
            "probe_predictions": self.probe_predictions.tolist(),
            "seconds": float(self.seconds),
            "notes": self.notes,
        }


class Backend(Protocol):
    """A run description -> RunResult. Adding a backend is adding a module with one of these."""

    name: str
    # Optional, read by fluxparity.parallel: cost_rank (int, smaller = slower, started first; default 2) and
    # own_process (bool: the backend trains in a child process of its own, or must train in the main process
    # (a user's module), so it is driven from the main one). Optional, read by fluxparity.experiment.train_and_compare:
    # check_run(run) -> None, called for every run before any training, raising on bad input it can find cheaply
    # (the torch backend on a user's module: builds, loads and runs it on one batch).

    def unavailable_reason(self) -> Optional[str]:
        """None when the backend can run here; otherwise one paragraph: why not, and how to enable it."""
        ...

    def train(self, run: RunSpec, progress: Optional[Progress] = None) -> RunResult:
        ...
