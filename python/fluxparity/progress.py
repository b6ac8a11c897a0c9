"""Live progress of trainings on stderr: a rich bar per (backend, run) on a terminal, periodic lines elsewhere.

A display is fed by two calls, from any thread:

- ``update(name, done, total)``: ``done`` of ``total`` units (Adam steps, or seeds in a sweep);
- ``phase(name, text)``: a stage with no steps ("starting Julia", "loading Flux", "writing the report").

``display(backend, run, done, total)`` and ``display.phase_of(backend, run, text)`` are the same for an
experiment's (backend, run) pairs (``fluxparity.parallel.ExperimentProgress``).

Where the lines go: on a terminal that takes colour, a ``rich`` live display (bars, done/total, rate, time
left), redrawn in place. Anywhere else (a pipe, a CI log, ``NO_COLOR`` set, ``TERM=dumb``) plain lines with
no escape codes: one per run when it starts, at most one every ``interval`` seconds while it trains, one
when it ends, and one per phase. Updates never move a run backwards (a worker's last throttled update may
arrive after its result).
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, TextIO

from ._console import colour_terminal

PLAIN_INTERVAL = 5.0  # seconds between two plain lines of one run (CI logs: alive, not flooded)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _rate(per_second: float, unit: str) -> str:
    return f"{per_second:,.0f} {unit}/s" if per_second >= 100 else f"{per_second:.3g} {unit}/s"


class _Run:
    """What the display knows about one run: progress, when it started, the phase it is in."""

    def __init__(self) -> None:
        self.done, self.total = 0.0, None
        self.first: Optional[tuple[float, float]] = None  # (time, done) of the first step update after a stage
        self.phase: Optional[str] = None
        self.last_line = -float("inf")
        self.finished = False

    def rate(self, now: float) -> Optional[float]:
        if self.first is None or now <= self.first[0] or self.done <= self.first[1]:
            return None
        return (self.done - self.first[1]) / (now - self.first[0])


class ProgressDisplay:
    """Progress of several runs at once. ``unit``: what ``done``/``total`` count ("steps", "seeds").

    ``stream``: default ``sys.stderr``. ``live``: a rich live display (default: when ``stream`` is a colour terminal, :func:`fluxparity._console.colour_terminal`),
    else plain lines every ``interval`` seconds per run. ``clock``: seconds, for tests.
    Use as a context manager: the live display starts and stops with the block.
    """

    def __init__(self, stream: Optional[TextIO] = None, *, unit: str = "steps", live: Optional[bool] = None,
                 interval: float = PLAIN_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        stream = sys.stderr if stream is None else stream
        self.stream, self.unit, self.interval, self.clock = stream, unit, interval, clock
        self.live = colour_terminal(stream) if live is None else live
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._bars = None  # rich.progress.Progress while live
        self._tasks: dict[str, int] = {}

    # ------------------------------------------------------------------ the calls that feed it

    def __call__(self, backend: str, run: str, done: float, total: float) -> None:
        self.update(f"{backend} {run}", done, total)

    def phase_of(self, backend: str, run: str, text: str) -> None:
        self.phase(f"{backend} {run}", text)

    def update(self, name: str, done: float, total: float) -> None:
        with self._lock:
            now = self.clock()
            state = self._runs.setdefault(name, _Run())
            new = state.phase is not None or state.total != total
            if not new and done <= state.done:
                return  # nothing new: a worker's last throttled update arriving after its result, a repeat
            if state.first is None or state.phase is not None:  # rate and time count from the end of the stages
                state.first = (now, done)
            state.phase, state.done, state.total = None, done, total
            if self.live:
                self._show_live(name, state)
            elif new or done >= total or now - state.last_line >= self.interval:
                self._line(name, state, now)

    def phase(self, name: str, text: str, finished: bool = False) -> None:
        """``name`` is in a stage with no steps, described by ``text``; ``finished``: its last stage, done."""
        with self._lock:
            now = self.clock()
            state = self._runs.setdefault(name, _Run())
            if state.phase == text:
                return
            state.phase, state.finished = text, finished
            if self.live:
                self._show_live(name, state)
            else:
                self.stream.write(f"  {name}: {text}\n")
                self.stream.flush()
                state.last_line = now

    # ------------------------------------------------------------------ plain lines

    def _line(self, name: str, state: _Run, now: float) -> None:
        total = state.total or 0
        text = f"  {name}: {int(state.done)}/{int(total)} {self.unit}"
        rate = state.rate(now)
        if state.done >= total:
            text += f", done in {now - state.first[0]:.1f}s"
        elif rate:
            text += f", {_rate(rate, self.unit)}, {_duration((total - state.done) / rate)} left"
        self.stream.write(text + "\n")
        self.stream.flush()
        state.last_line = now

    # ------------------------------------------------------------------ rich live display

    def _show_live(self, name: str, state: _Run) -> None:
        if self._bars is None:
            return
        if state.phase is not None:
            fields = dict(total=1 if state.finished else None, completed=int(state.finished), phase=state.phase)
        else:
            fields = dict(total=state.total, completed=state.done, phase="")
        task = self._tasks.get(name)
        if task is None:
            self._tasks[name] = self._bars.add_task(name, **fields)
        elif state.phase is None and state.first is not None and state.done == state.first[1]:
            self._bars.reset(task, **fields)  # its first step update: time and rate count from here
        else:
            self._bars.update(task, **fields)

    def __enter__(self) -> "ProgressDisplay":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            count, rate, left = _columns()
            self._bars = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=30), count(self.unit), rate(self.unit), left(),
                TimeElapsedColumn(),
                console=Console(file=self.stream), refresh_per_second=10,
                redirect_stdout=False, redirect_stderr=False,  # the report goes to stdout, untouched
            )
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


@contextmanager
def progress_display(stream: Optional[TextIO] = None, *, quiet: bool = False,
                     unit: str = "steps") -> Iterator[Optional[ProgressDisplay]]:
    """The CLI's display on ``stream`` (``None`` with ``--quiet``: nothing at all is written)."""
    if quiet:
        yield None
        return
    with ProgressDisplay(stream, unit=unit) as display:
        yield display


def _columns():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class CountColumn(ProgressColumn):
        """``done/total unit``, or the phase while a run has no steps yet."""

        def __init__(self, unit: str) -> None:
            super().__init__()
            self.unit = unit

        def render(self, task) -> Text:
            if task.fields.get("phase") or task.total is None:
                return Text(task.fields.get("phase", ""), style="cyan", no_wrap=True, overflow="ellipsis")
            return Text(f"{int(task.completed)}/{int(task.total)} {self.unit}", style="green")

    class RateColumn(ProgressColumn):
        def __init__(self, unit: str) -> None:
            super().__init__()
            self.unit = unit

        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if task.fields.get("phase") or not speed else _rate(speed, self.unit), style="magenta")

    class LeftColumn(ProgressColumn):
        def render(self, task) -> Text:
            if task.total is not None and task.completed >= task.total:
                return Text("done", style="green")
            left = None if task.fields.get("phase") else task.time_remaining
            return Text("" if left is None else f"{_duration(left)} left", style="yellow")

    return CountColumn, RateColumn, LeftColumn

