"""What one training run is: the model's activation, the float type, and the tutorial's training settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ACTIVATIONS = ("identity", "tanh")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class RunConfig:
    """One training run, identical for every backend.

    The tutorial: 50 epochs over the training set, one Adam step per sample (batch size 1), in the
    data's order, loss ``|last output - label|``, Adam with Optimisers.jl's defaults
    (eta = 1e-3, beta = (0.9, 0.999), epsilon = 1e-8).
    """

    activation: str = "identity"
    dtype: str = "float32"
    epochs: int = 50
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")

    @property
    def label(self) -> str:
        return f"{self.activation}/{self.dtype}"

    def to_dict(self) -> dict:
        return asdict(self)
