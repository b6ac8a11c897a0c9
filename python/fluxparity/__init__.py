"""fluxparity: train a Flux.jl model and its PyTorch port on the same data and show whether they agree."""

from .backends import Backend, BackendError, BackendUnavailable, RunResult, get_backend
from .compare import Check, Parity, compare_results
from .config import RunConfig
from .data import Dataset, generate_dataset
from .experiment import Experiment, Run, run_experiment
from .models import Chain, tutorial_chain

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendError", "BackendUnavailable", "Check", "Dataset", "Chain", "Experiment", "Parity",
    "Run", "RunConfig", "RunResult", "compare_results", "generate_dataset", "get_backend", "tutorial_chain",
    "run_experiment",
]
