"""One array compared with its golden counterpart, and the message a failing comparison gives.

The rule is ``torch.testing.assert_close``'s: ``|actual - expected| <= atol + rtol * |expected|`` element by
element (NaN never passes; an infinity passes only against the same infinity). The message says more than
``assert_close`` does: the quantity, the parameter's Flux and torch names, the worst element with what its
index means (gate and unit of a weight row; unit, time step and batch of an output), how many elements fail,
and, when the pattern fits, the likely porting mistake (``_diagnose.likely_mistake``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ._diagnose import GATE_NAMES, likely_mistake


@dataclass(frozen=True)
class Mismatch:
    """A failed comparison. Indices are 0-based positions in the Flux-layout array."""

    quantity: str  # e.g. "output", "gradient", "parameters after step 3"
    flux_name: str  # e.g. "layers[1].cell.Wi"
    torch_name: str  # e.g. "0.weight_ih_l0"
    shape: tuple
    worst_index: tuple
    where: str  # the worst index in words
    expected: float
    actual: float
    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    n_bad: int
    n_total: int
    likely_mistake: Optional[str]

    def message(self) -> str:
        if not self.worst_index and self.expected != self.expected:  # no values compared (mapping, shape)
            lines = [f"{self.quantity} of {self.flux_name} (torch: {self.torch_name}): {self.where}"]
            if self.likely_mistake:
                lines.append(f"  likely porting mistake: {self.likely_mistake}")
            return "\n".join(lines)
        lines = [
            f"{self.quantity} of {self.flux_name} (torch: {self.torch_name}) differs: "
            f"{self.n_bad} of {self.n_total} elements outside |actual - expected| <= "
            f"{self.atol:.1e} + {self.rtol:.1e} * |expected|",
            f"  worst at {self.where}: expected {self.expected!r}, got {self.actual!r}",
            f"  max abs diff {self.max_abs:.3e}, max rel diff {self.max_rel:.3e}",
        ]
        if self.likely_mistake:
            lines.append(f"  likely porting mistake: {self.likely_mistake}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


class ParityError(AssertionError):
    """Raised by the ``assert_*`` helpers; ``mismatches`` holds every failed comparison, in the order compared
    (the first one is usually the cause of the rest); ``header`` (optional) says which golden and producer."""

    def __init__(self, mismatches: list[Mismatch], header: str = "") -> None:
        self.mismatches = mismatches
        self.header = header
        super().__init__("\n".join(([header] if header else []) + [m.message() for m in mismatches]))


def describe_index(index: tuple, *, role: str, kind: Optional[str] = None, hidden: Optional[int] = None) -> str:
    """An index in words. ``role``: "weight" / "bias" (gate blocks along axis 0) or "output" (out, len, batch)."""
    if role == "output" and len(index) == 3:
        unit, t, b = index
        return f"unit {unit}, time step {t + 1} (1-based), batch {b}"
    if role in ("weight", "bias") and kind in GATE_NAMES and hidden and index:
        row = index[0]
        gate = GATE_NAMES[kind][row // hidden] if row // hidden < len(GATE_NAMES[kind]) else "?"
        text = f"row {row} (gate {gate}, unit {row % hidden})"
        return text + (f", column {index[1]}" if len(index) > 1 else "")
    return "index " + str(tuple(int(i) for i in index))


def check_close(quantity: str, flux_name: str, torch_name: str, expected, actual, *, rtol: float, atol: float,
                role: str = "", kind: Optional[str] = None, hidden: Optional[int] = None,
                expected_dtype=None, actual_dtype=None, initial=None) -> Optional[Mismatch]:
    """None when ``actual`` matches ``expected`` (same shape, every element within tolerance), else a Mismatch.

    Args:
        expected: the golden array, Flux layout.
        actual: the port's array, already converted to Flux layout (shape mismatches are reported, and a
            reversed shape is recognised as a transposed matrix).
        role: "weight", "bias", "output" or "" — which porting mistakes may explain a difference.
        kind: the layer kind ("lstm", ...) for gate-block names; hidden: its hidden size.
        initial: the parameter before training, to recognise a bias that moved twice as far.
    """
    e = np.asarray(expected)
    a = np.asarray(actual)
    expected_dtype = e.dtype if expected_dtype is None else expected_dtype
    actual_dtype = a.dtype if actual_dtype is None else actual_dtype
    e64, a64 = e.astype(np.float64), a.astype(np.float64)
    hint = lambda: likely_mistake(e64, a64, role=role, kind=kind, expected_dtype=expected_dtype,  # noqa: E731
                                  actual_dtype=actual_dtype,
                                  initial=None if initial is None else np.asarray(initial, dtype=np.float64))
    if e64.shape != a64.shape:
        return Mismatch(quantity, flux_name, torch_name, e64.shape, (), f"shape: expected {e64.shape}, got "
                        f"{a64.shape}", float("nan"), float("nan"), float("inf"), float("inf"), rtol, atol,
                        int(e64.size), int(e64.size), hint())
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # inf - inf, 0 * inf: decided below
        diff = np.abs(a64 - e64)
        allowed = atol + rtol * np.abs(e64)
        finite = np.isfinite(a64) & np.isfinite(e64)
        bad = ~np.where(finite, diff <= allowed, a64 == e64)  # an infinity passes only against the same one
        if not bad.any():
            return None
        scaled = diff / np.where(allowed > 0, allowed, np.finfo(float).tiny)
        ratio = np.where(finite, scaled, np.where(bad, np.inf, 0.0))  # a non-finite failure is the worst
        worst = np.unravel_index(int(np.argmax(ratio)), e64.shape) if e64.ndim else ()
        denom = np.maximum(np.abs(a64), np.abs(e64))
        rel = np.divide(diff, denom, out=np.zeros_like(diff), where=denom > 0)
    return Mismatch(
        quantity=quantity, flux_name=flux_name, torch_name=torch_name, shape=e64.shape,
        worst_index=tuple(int(i) for i in worst),
        where=describe_index(tuple(int(i) for i in worst), role=role, kind=kind, hidden=hidden),
        expected=float(e64[worst]), actual=float(a64[worst]),
        max_abs=float(np.nanmax(diff)) if not np.isnan(diff).all() else float("nan"),
        max_rel=float(np.nanmax(rel)) if not np.isnan(rel).all() else float("nan"),
        rtol=rtol, atol=atol, n_bad=int(bad.sum()), n_total=int(bad.size), likely_mistake=hint(),
    )
