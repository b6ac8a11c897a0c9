"""What one training run is: the model's activation, the float type, and the tutorial's training settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from .optim import Rule, rule as make_rule, to_dict as rule_to_dict

ACTIVATIONS = ("identity", "tanh")
DTYPES = ("float32", "float64")
MODELS = ("rnn", "lstm", "gru", "gruv3")
# Gated cells have fixed nonlinearities (sigmoid gates, tanh candidate); their runs are labelled "gated".
GATED = "gated"
DEFAULT_LR = 1e-3  # the tutorial's Adam eta


@dataclass(frozen=True)
class RunConfig:
    """One training run, identical for every backend.

    The tutorial: 50 epochs over the training set, one Adam step per sample (batch size 1), in the
    data's order, loss ``|last output - label|``, Adam with Optimisers.jl's defaults
    (eta = 1e-3, beta = (0.9, 0.999), epsilon = 1e-8).

    ``optimizer``: any Optimisers.jl rule (:class:`fluxparity.optim.Rule`) instead of the tutorial's
    ``Adam(lr)``; ``None`` (default) means ``Adam(eta=lr)``. With a rule given, ``lr`` must stay at its
    default (the rule holds its own η): :attr:`rule` is what every backend trains with.
    """

    activation: str = "identity"
    dtype: str = "float32"
    epochs: int = 50
    lr: float = DEFAULT_LR
    # Beyond the tutorial: the recurrent cell and its hidden size. The tutorial is rnn with hidden 1 and
    # no head; every other model reads its last step through a Dense(hidden => 1) head, as in
    # Flux's Chain(RNN(1 => H), Dense(H => 1)).
    model: str = "rnn"
    hidden: int = 1
    optimizer: Optional[Rule] = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model {self.model!r} is not one of {', '.join(MODELS)}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {self.hidden!r}")
        allowed = ACTIVATIONS if self.model == "rnn" else (GATED,)
        if self.activation not in allowed:
            raise ValueError(f"activation {self.activation!r} is not one of {', '.join(allowed)} for {self.model}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer is not None:
            if not isinstance(self.optimizer, Rule):
                raise ValueError(f"optimizer must be a fluxparity.optim.Rule, got {type(self.optimizer).__name__}")
            if self.lr != DEFAULT_LR:
                raise ValueError(f"lr {self.lr!r} does not apply with optimizer {self.optimizer}: the rule holds "
                                 "its own eta; give one or the other")

    @property
    def rule(self) -> Rule:
        """The Optimisers.jl rule every backend trains with: ``optimizer``, or the tutorial's ``Adam(eta=lr)``."""
        return self.optimizer if self.optimizer is not None else make_rule("Adam", eta=self.lr)

    @property
    def is_adam(self) -> bool:
        """The rule is a plain ``Adam`` (any hyperparameters): what the inline Adam kernels serve."""
        return self.rule.name == "Adam"

    @property
    def is_tutorial(self) -> bool:
        """The blog's model: one RNN unit, no head."""
        return self.model == "rnn" and self.hidden == 1

    @property
    def label(self) -> str:
        if self.is_tutorial:
            return f"{self.activation}/{self.dtype}"
        return f"{self.model}-h{self.hidden}/{self.activation}/{self.dtype}"

    def to_dict(self) -> dict:
        """The fields, with ``optimizer`` as the rule's JSON form (``fluxparity.optim.to_dict``, never None)."""
        return {**asdict(self), "optimizer": rule_to_dict(self.rule)}
