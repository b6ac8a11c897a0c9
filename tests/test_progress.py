"""Live progress: plain periodic lines off a terminal, worker runs' progress reaching the parent while they train."""

import io

from conftest import make_inputs, run_of, tutorial_for

import fluxparity.parallel as parallel
from fluxparity.backends import get_backend
from fluxparity.parallel import run_runs_concurrently
from fluxparity.progress import ProgressDisplay


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def plain(interval=5.0, unit="steps"):
    stream, clock = io.StringIO(), Clock()
    return ProgressDisplay(stream, unit=unit, live=False, interval=interval, clock=clock), stream, clock


def test_plain_lines_come_at_start_every_interval_and_at_the_end():
    display, stream, clock = plain(interval=5.0)
    with display:
        display("torch", "identity/float64", 0, 1000)
        for done in range(100, 1001, 100):  # an update a second for ten seconds
            clock.now += 1.0
            display("torch", "identity/float64", done, 1000)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "  torch identity/float64: 0/1000 steps",
        "  torch identity/float64: 500/1000 steps, 100 steps/s, 0:05 left",
        "  torch identity/float64: 1000/1000 steps, done in 10.0s",
    ]


def test_plain_lines_of_several_runs_and_their_phases():
    display, stream, clock = plain()
    with display:
        display.phase_of("flux", "tanh/float32", "starting Julia")
        display("reference", "tanh/float32", 0, 50)
        display.phase_of("flux", "tanh/float32", "loading Flux")
        display.phase_of("flux", "tanh/float32", "loading Flux")  # said once
        clock.now += 2.0
        display("reference", "tanh/float32", 50, 50)
        display("flux", "tanh/float32", 0, 50)
        display.phase("report", "writing the report files", finished=True)
    assert stream.getvalue().splitlines() == [
        "  flux tanh/float32: starting Julia",
        "  reference tanh/float32: 0/50 steps",
        "  flux tanh/float32: loading Flux",
        "  reference tanh/float32: 50/50 steps, done in 2.0s",
        "  flux tanh/float32: 0/50 steps",
        "  report: writing the report files",
    ]


def test_a_late_or_repeated_update_never_moves_a_run_back_or_repeats_its_end():
    display, stream, clock = plain()
    display("torch", "identity/float32", 0, 10)
    clock.now += 1
    display("torch", "identity/float32", 10, 10)  # the parent's "finished"
    display("torch", "identity/float32", 7, 10)  # the worker's last throttled update, arriving late
    display("torch", "identity/float32", 10, 10)
    assert stream.getvalue().splitlines() == ["  torch identity/float32: 0/10 steps",
                                              "  torch identity/float32: 10/10 steps, done in 1.0s"]


def test_seeds_are_counted_in_seeds_with_a_rate_below_one():
    display, stream, clock = plain(interval=1.0, unit="seeds")
    display.update("torch tanh/float32", 0, 8)
    clock.now += 4.0
    display.update("torch tanh/float32", 1.5, 8)  # a batch of seeds, part-way through its epochs
    assert stream.getvalue().splitlines()[-1] == "  torch tanh/float32: 1/8 seeds, 0.375 seeds/s, 0:17 left"


def test_a_worker_sends_at_most_ten_updates_a_second_and_always_its_last(monkeypatch):
    sent = []

    class Queue:
        def put(self, event):
            sent.append(event)

    now = [0.0]
    monkeypatch.setattr(parallel.time, "monotonic", lambda: now[0])
    report = parallel._Reporter(Queue(), (0, "torch"))
    for done in range(1, 1001):  # 1000 updates over 2 seconds
        now[0] += 0.002
        report(done, 1000)
    steps = [e for e in sent if e[0] == "steps"]
    assert 20 <= len(steps) <= 21 and steps[-1] == ("steps", (0, "torch"), 1000, 1000)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, backend, run, done, total):
        self.events.append((backend, run, done, total))

    def phase_of(self, backend, run, text):
        self.events.append((backend, run, text))


def test_runs_in_pool_workers_report_while_they_train(monkeypatch):
    monkeypatch.setattr(parallel, "UPDATES_PER_SECOND", float("inf"))  # the workers' throttle off: every update
    data, initial = make_inputs(20, seed=1)
    tasks = [run_of(data, tutorial_for(initial, a), dtype="float64", epochs=4, label=f"{a}/float64")
             for a in ("identity", "tanh")]
    progress = Recorder()
    run_runs_concurrently(tasks, {"torch": get_backend("torch"), "reference": get_backend("reference")}, workers=2,
                          min_steps=0, progress=progress)
    for name in ("torch", "reference"):
        for config in tasks:
            mine = [e[2:] for e in progress.events if e[:2] == (name, config.label)]
            assert mine[0] == ("waiting for a worker",)
            assert mine[1] == (0, 80) and mine[-1] == (80, 80)
    # torch reports each epoch from its worker: 20, 40, 60 of 80 steps reach this process before the end
    torch_steps = [e[2] for e in progress.events if e[:2] == ("torch", "tanh/float64") and len(e) == 4]
    assert {20, 40, 60} <= set(torch_steps)


def test_the_live_display_shows_phases_counts_and_ends():
    stream = io.StringIO()  # not a terminal: rich draws the last frame once, when the display stops
    with ProgressDisplay(stream, live=True) as display:
        display.phase_of("flux", "tanh/float32", "loading Flux")
        display("torch", "tanh/float32", 0, 100)
        display("torch", "tanh/float32", 40, 100)
        display("reference", "tanh/float32", 0, 100)
        display("reference", "tanh/float32", 100, 100)
        display.phase("report", "written to out", finished=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # a row per run, each on one line

    def row(name):
        return next(line for line in lines if line.startswith(name + " "))

    assert "loading Flux" in row("flux tanh/float32")
    assert "40/100 steps" in row("torch tanh/float32") and "done" not in row("torch tanh/float32")
    assert "100/100 steps" in row("reference tanh/float32") and " done " in row("reference tanh/float32")
    assert "written to out" in row("report") and " done " in row("report")


def test_rate_and_time_count_from_the_first_step_after_the_stages():
    display, stream, clock = plain(interval=1.0)
    display("flux", "identity/float64", 0, 1000)  # the parent's "started", before the worker runs
    display.phase_of("flux", "identity/float64", "starting Julia")
    clock.now += 60.0  # Julia starts, Flux loads: no steps
    display("flux", "identity/float64", 100, 1000)
    clock.now += 1.0
    display("flux", "identity/float64", 300, 1000)
    clock.now += 1.0
    display("flux", "identity/float64", 1000, 1000)
    assert stream.getvalue().splitlines()[-2:] == [
        "  flux identity/float64: 300/1000 steps, 200 steps/s, 0:04 left",
        "  flux identity/float64: 1000/1000 steps, done in 2.0s",
    ]
