"""The description of one training run: everything a leg needs, nothing a leg decides on its own.

A :class:`RunSpec` is a model (a :class:`fluxparity.models.Chain` holding the initial weights and its readout),
the data (:class:`fluxparity.data.Dataset`), the loss (one of ``fluxparity.models.LOSSES``, Flux's with
``agg = mean``, or the tutorial's ``abs_sum``), an Optimisers.jl rule, the batch size, whether each epoch
is shuffled, the epochs, the float type and the seed the shuffle permutations come from. Every leg trains
the same batches (:attr:`RunSpec.batches`) with the same loss and rule.

The tutorial is one instance (:func:`tutorial_run`): ``Chain(RNN(1 => 1, σ))`` on the sum task, ``abs_sum``,
batch 1, in order, ``Adam(1e-3)``, 50 epochs.

Losses recorded per run (:class:`fluxparity.backends.RunResult`): each step's loss is the loss of that
batch (the training objective, in the run's dtype); a set's loss (before training, after each epoch) is
the SUM of its per-sample losses, each sample's loss being the loss of a batch of one, accumulated in
float64 (for the tutorial: ``Σ |ŷ - y|``, as it always was).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np

from .data import Batches, Dataset, make_batches
from .models import LOSSES, Chain
from .optim import Rule, rule as make_rule, to_dict as rule_to_dict

DTYPES = ("float32", "float64")
DEFAULT_LR = 1e-3  # the tutorial's Adam eta
TUTORIAL_EPOCHS = 50


def shuffle_seed(seed: int) -> np.random.SeedSequence:
    """The stream the shuffle permutations come from: the third child of ``SeedSequence(seed)`` (the data
    and the initial weights use the first two, ``fluxparity.experiment.seeds_for``)."""
    return np.random.SeedSequence(seed).spawn(3)[2]


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One training run, identical for every leg. See the module docstring for what each field means.

    Raises ValueError naming the field (and, for data that do not fit the model, the data entry ``x`` or
    ``y``) when the description is inconsistent.
    """

    model: Chain  # the initial weights (stored float64) and the readout
    data: Dataset
    loss: str = "abs_sum"
    rule: Optional[Rule] = None  # None: Adam(eta = DEFAULT_LR), the tutorial's
    dtype: str = "float32"
    epochs: int = TUTORIAL_EPOCHS
    batch_size: int = 1
    shuffle: bool = False
    seed: int = 0
    label: str = ""
    notes: dict = field(default_factory=dict)  # how the model was described (shorthand, expression, file)

    def __post_init__(self) -> None:
        if not isinstance(self.model, Chain):
            raise TypeError(f"model must be a fluxparity.models.Chain, got {type(self.model).__name__}")
        if not isinstance(self.data, Dataset):
            raise TypeError(f"data must be a fluxparity.data.Dataset, got {type(self.data).__name__}")
        object.__setattr__(self, "model", self.model.astype(np.float64))
        if self.rule is None:
            object.__setattr__(self, "rule", make_rule("Adam", eta=DEFAULT_LR))
        if not isinstance(self.rule, Rule):
            raise ValueError(f"rule must be a fluxparity.optim.Rule, got {type(self.rule).__name__}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        m, d = self.model, self.data
        if m.input_size != d.input_size:
            raise ValueError(f"data entry 'x' has {d.input_size} input(s) per step, the model takes {m.input_size}")
        if m.output_size != d.output_size:
            raise ValueError(f"data entry 'y' has {d.output_size} output(s), the model gives {m.output_size}")
        if m.readout != d.readout:
            raise ValueError(f"data entry 'y' holds {'one target per sample' if d.readout == 'last' else 'a target per step'}"
                             f" (readout {d.readout}), the model's readout is {m.readout!r}")
        if self.loss == "logitcrossentropy" and d.targets != "onehot" and d.source != "sum":
            if not all(np.all((y == 0) | (y == 1)) and np.allclose(y.sum(axis=-1), 1) for y in d.train_y[:100]):
                raise ValueError("loss logitcrossentropy needs one-hot rows (or integer labels) in data entry 'y'")
        if self.batch_size > 1 and not d.fixed_length:
            raise ValueError(f"batch_size {self.batch_size}: the sequences vary in length (a batch holds one "
                             "length); use batch_size 1")
        if not self.label:
            object.__setattr__(self, "label", f"{self.dtype}")

    # --- derived -----------------------------------------------------------------------------------
    @property
    def readout(self) -> str:
        return self.model.readout

    @property
    def is_adam(self) -> bool:
        """The rule is a plain ``Adam`` (any hyperparameters): what the inline Adam kernels serve."""
        return self.rule.name == "Adam"

    @property
    def lr(self) -> Optional[float]:
        """Adam's eta (None for any other rule)."""
        return float(self.rule["eta"]) if self.is_adam else None

    @cached_property
    def batches(self) -> Batches:
        """The batches of every epoch; shuffled ones from :func:`shuffle_seed` ``(seed)``."""
        return make_batches(self.data.n_train, int(self.batch_size), int(self.epochs), shuffle=self.shuffle,
                            seed=shuffle_seed(int(self.seed)) if self.shuffle else None)

    @property
    def total_steps(self) -> int:
        return self.batches.total_steps

    @property
    def fits_tutorial_kernels(self) -> bool:
        """The shape the hand-written fast kernels implement (the reference's numba kernel, torch's fast
        path): the tutorial's ``Chain(RNN(1 => 1, identity|tanh))``, ``abs_sum``, batch 1, in order."""
        return (self.model.is_tutorial_shape and self.loss == "abs_sum" and self.batch_size == 1
                and not self.shuffle)

    @property
    def outcome_tolerance_derived(self) -> bool:
        """The float32 outcome tolerance (``compare.adam_jitter``) is derived for this run: the tutorial's
        one-unit RNN on the sum task trained with Adam; for any other run it is reported, not judged."""
        return self.fits_tutorial_kernels and self.data.source == "sum" and self.is_adam

    # --- scales for the comparison (compare.py knows nothing of models or data) ----------------------
    def _sample_scale(self, y: np.ndarray) -> float:
        if self.loss == "abs_sum":
            return float(np.abs(y).sum())
        if self.loss == "mae":
            return float(np.abs(y).mean())
        if self.loss == "mse":
            return float((y * y).mean())
        return 1.0  # logitcrossentropy: a log-probability, of order one

    def scales(self) -> dict:
        """Each checked quantity's natural magnitude (see ``compare.py``): per step, per set, per prediction."""
        per_train = np.array([self._sample_scale(y) for y in self.data.train_y])
        per_test = np.array([self._sample_scale(y) for y in self.data.test_y])
        mean_loss = self.loss != "abs_sum"
        step = np.array([per_train[idx].mean() if mean_loss else per_train[idx].sum()
                         for idx in self.batches.all_steps()])
        if self.loss == "logitcrossentropy":
            probe = np.concatenate([np.ones(y.size) for y in self.data.probe_y])
        else:
            probe = np.concatenate([np.abs(y).ravel() for y in self.data.probe_y])
        return {"step": step, "train": float(np.abs(per_train).sum()), "test": float(np.abs(per_test).sum()),
                "probe": probe}

    def to_dict(self) -> dict:
        from .models import flux_expression

        return {"label": self.label, "model": flux_expression(self.model), "readout": self.readout,
                "loss": self.loss, "optimizer": rule_to_dict(self.rule), "dtype": self.dtype,
                "epochs": int(self.epochs), "batch_size": int(self.batch_size), "shuffle": bool(self.shuffle),
                "seed": int(self.seed), "steps_per_epoch": self.batches.steps_per_epoch, "notes": dict(self.notes)}


def run_list(runs) -> list:
    """``list(runs)``, checked: at least one item, every one a :class:`RunSpec` (ValueError / TypeError naming
    the argument ``runs``)."""
    runs = list(runs)
    if not runs:
        raise ValueError("runs: at least one fluxparity.run.RunSpec is needed")
    for r in runs:
        if not isinstance(r, RunSpec):
            raise TypeError(f"runs: expected fluxparity.run.RunSpec items, got {type(r).__name__}")
    return runs
