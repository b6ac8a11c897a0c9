"""Hand-made .npz files for the reader tests (weights and golden files): write entries exactly as given, and
the NpzError a reader raises for them."""

import numpy as np
import pytest

from fluxparity._npzio import NpzError


def write_npz(path, entries: dict):
    """``entries`` written with ``np.savez`` to exactly ``path`` (an open file: no ``.npz`` appended)."""
    with open(path, "wb") as f:
        np.savez(f, **entries)
    return path


def refused(load, path) -> NpzError:
    """The :class:`NpzError` ``load(path)`` raises; it must name the file first."""
    with pytest.raises(NpzError) as error:
        load(path)
    assert error.value.path == str(path) and str(error.value).startswith(str(path))
    return error.value
