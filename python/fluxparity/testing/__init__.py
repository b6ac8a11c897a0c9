"""Parity assertions for a user's PyTorch port against a golden file: what Flux (or the NumPy reference)
computed for a model, carried into a Julia-free test run (docs/testing.md, docs/golden-format.md).

- Golden files: :func:`load_golden`, :func:`record_golden` (the NumPy reference as producer),
  :func:`reference_golden`, :func:`save_golden`, :class:`Golden`.
- Assertions (torch, loaded on first use): :func:`assert_forward_parity`, :func:`assert_gradient_parity`,
  :func:`assert_training_parity`, :func:`assert_parity`; failures raise :class:`ParityError`.
- The pytest plugin (``--fluxparity-report DIR``, ``fluxparity_golden_path``) is ``._plugin``.

Importing this package imports no torch: the pytest plugin loads it in every session.
"""

from ._golden import (
    FORMAT as FORMAT,
    REFERENCE_PRODUCER as REFERENCE_PRODUCER,
    Golden as Golden,
    load_golden as load_golden,
    record_golden as record_golden,
    reference_golden as reference_golden,
    save_golden as save_golden,
)
from ._mismatch import Mismatch as Mismatch, ParityError as ParityError, check_close as check_close

from .._lazy import lazy_names

_TORCH_NAMES = {
    "assert_forward_parity": "._assert",
    "assert_gradient_parity": "._assert",
    "assert_training_parity": "._assert",
    "assert_parity": "._assert",
    "TOLERANCES": "._assert",
}

__getattr__, __dir__ = lazy_names(__name__, _TORCH_NAMES, globals())
