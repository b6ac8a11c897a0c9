"""fluxparity: train a Flux.jl model and its PyTorch port on the same data and show whether they agree."""

from .backends import Backend, BackendError, BackendUnavailable, RunResult, get_backend
from .compare import Check, Parity, compare_results
from .data import Dataset, generate_dataset, load_npz_data
from .experiment import Experiment, Run, run_experiment, train_and_compare
from .models import Chain, parse_flux, tutorial_chain
from .run import RunSpec
from .sweep import Sweep, sweep_runs

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendError", "BackendUnavailable", "Check", "Dataset", "Chain", "Experiment", "Parity",
    "Run", "RunResult", "RunSpec", "compare_results", "generate_dataset", "get_backend", "load_npz_data",
    "parse_flux", "run_experiment", "Sweep", "sweep_runs", "train_and_compare", "tutorial_chain",
]
