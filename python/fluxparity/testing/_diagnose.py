"""Recognise the classic Flux -> PyTorch porting mistakes from what a mismatch looks like.

Each detector takes the expected array (what Flux, or the reference, computed; Flux layout) and the actual
one (what the port computed, already converted to Flux layout) and returns one sentence naming the mistake,
or None when the pattern does not fit. They only look at values: a detector that fires is a strong hint,
not a proof, and the message says "likely".

Layouts assumed here (stated once): parameters are Flux's ``(G·hidden, in)`` / ``(out, in)`` matrices and
``(G·hidden,)`` vectors with ``G`` gate blocks stacked along the first axis; outputs are ``(out, len, batch)``.
"""

from __future__ import annotations

from itertools import permutations
from typing import Optional, Sequence

import numpy as np

# Gate block names along the first axis, in Flux 0.16's order (= PyTorch's), per layer kind.
GATE_NAMES = {
    "rnn": ("hidden",),
    "lstm": ("input", "forget", "cell", "output"),
    "gru": ("reset", "update", "candidate"),
    "gruv3": ("reset", "update", "candidate"),
}

# Detectors compare values "to rounding": a relative tolerance far above float32 rounding of a whole
# forward pass (~1e-6) and far below any real difference of structure (O(1)).
_SAME = dict(rtol=1e-4, atol=1e-6)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, **_SAME))


def transposed(expected: np.ndarray, actual: np.ndarray) -> Optional[str]:
    """A matrix stored transposed: shapes reversed, or (square) values equal to the transpose."""
    if expected.ndim != 2 or expected.shape[0] == 1 and expected.shape[1] == 1:
        return None
    if actual.shape == expected.shape[::-1] and actual.shape != expected.shape:
        return (f"a transposed matrix: the port has shape {actual.shape}, the golden {expected.shape}; Flux's "
                f"(out, in) matrix IS torch's weight (out, in): copy it without transposing")
    if actual.shape == expected.shape and _close(actual, expected.T) and not _close(actual, expected):
        return "a transposed matrix: the port's values equal the transpose of the golden's (copy W as it is, not W.T)"
    return None


def gate_order(expected: np.ndarray, actual: np.ndarray, kind: str) -> Optional[str]:
    """Gate blocks permuted along the first axis (e.g. LSTM i, f, o, g from another framework's layout)."""
    names = GATE_NAMES.get(kind, ())
    g = len(names)
    if g < 2 or expected.shape != actual.shape or expected.shape[0] % g:
        return None
    e_blocks, a_blocks = np.split(expected, g), np.split(actual, g)
    for perm in permutations(range(g)):
        if perm == tuple(range(g)):
            continue
        if all(_close(a_blocks[i], e_blocks[p]) for i, p in enumerate(perm)):
            found = ", ".join(names[p] for p in perm)
            want = ", ".join(names)
            return (f"{kind.upper()} gate order: the port's blocks are ({found}) where Flux and torch use "
                    f"({want}); reorder the row blocks when copying")
    return None


def doubled(expected: np.ndarray, actual: np.ndarray, initial: Optional[np.ndarray] = None) -> Optional[str]:
    """A bias counted twice: the value (or, after training, its change) is twice Flux's.

    PyTorch's recurrent layers have ``bias_ih`` and ``bias_hh`` where Flux has one bias: copying Flux's bias
    into both doubles it; training both moves their sum about twice as far as Flux's one bias.
    """
    if expected.shape != actual.shape or not np.any(expected != 0):
        return None
    if _close(actual, 2 * expected):
        return ("a bias counted twice: the port's value is 2x the golden's; put Flux's one bias in bias_ih only, "
                "with bias_hh = 0")
    if initial is not None and initial.shape == expected.shape:
        moved_e, moved_a = expected - initial, actual - initial
        if np.any(moved_e != 0) and _close(moved_a, 2 * moved_e):
            return ("a bias counted twice: it moved 2x as far as the golden's; bias_ih and bias_hh both train and "
                    "each gets the full gradient: zero bias_hh and freeze it (requires_grad=False)")
    return None


def time_batch_swapped(expected: np.ndarray, actual: np.ndarray) -> Optional[str]:
    """Outputs ``(out, len, batch)`` whose time and batch axes were swapped on the way in or out."""
    if expected.ndim != 3 or expected.shape[1] == expected.shape[2] == 1:
        return None
    swapped = np.swapaxes(actual, 1, 2)
    if swapped.shape == expected.shape and _close(swapped, expected) and not _close(actual, expected):
        return ("time and batch axes swapped: the golden's (out, len, batch) came back as (out, batch, len); "
                "check batch_first (torch (len, batch, in) is the default; (batch, len, in) needs batch_first=True)")
    if actual.shape == expected.shape[:1] + expected.shape[1:][::-1] and actual.shape != expected.shape:
        return (f"time and batch axes swapped: the port's output has shape {actual.shape}, the golden's "
                f"(out, len, batch) is {expected.shape}; check batch_first")
    return None


def float32_against_float64(expected: np.ndarray, actual: np.ndarray, expected_dtype: np.dtype,
                            actual_dtype: Optional[np.dtype] = None) -> Optional[str]:
    """A float64 golden matched only to float32 rounding: the port (or its weights) run in float32."""
    if np.dtype(expected_dtype) != np.float64:
        return None
    if actual_dtype is not None and np.dtype(actual_dtype) == np.float32:
        return "Float32 against a Float64 golden: the port computes in float32; convert the module with .double()"
    if expected.shape != actual.shape:
        return None
    finite = np.isfinite(expected) & np.isfinite(actual)
    if not finite.any():
        return None
    e, a = expected[finite], actual[finite]
    scale = np.maximum(np.abs(e), np.finfo(np.float32).tiny)
    rel = np.abs(e - a) / scale
    representable = np.all(a.astype(np.float32).astype(np.float64) == a)
    if representable and 1e-9 < rel.max() < 1e-4:
        return ("Float32 against a Float64 golden: every value the port gave is a float32 number and the "
                "difference is float32 rounding; convert the weights/inputs to float64")
    return None


def likely_mistake(expected: np.ndarray, actual: np.ndarray, *, role: str, kind: Optional[str] = None,
                   expected_dtype=np.float64, actual_dtype=None,
                   initial: Optional[np.ndarray] = None) -> Optional[str]:
    """The first detector that fits, in order of specificity; ``role`` is "weight", "bias" or "output"."""
    expected, actual = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    checks: Sequence = ()
    if role == "weight":
        checks = (lambda: transposed(expected, actual), lambda: gate_order(expected, actual, kind or ""))
    elif role == "bias":
        checks = (lambda: doubled(expected, actual, initial), lambda: gate_order(expected, actual, kind or ""))
    elif role == "output":
        checks = (lambda: time_batch_swapped(expected, actual),)
    for check in (*checks, lambda: float32_against_float64(expected, actual, expected_dtype, actual_dtype)):
        found = check()
        if found:
            return found
    return None
