"""The simulator: determinism, conservation of events, traces, trace files and the CLI."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest

from eventing.autoscaler.baselines.keda import KedaPolicy
from eventing.autoscaler.policy import Dispatch, ScaleIn, SimView
from eventing.autoscaler.simulate import cli
from eventing.autoscaler.simulate.engine import Simulation
from eventing.autoscaler.simulate.ours import OursPolicy
from eventing.autoscaler.simulate.profiles import PROFILES, Workload
from eventing.autoscaler.simulate.report import compare, format_report
from eventing.autoscaler.simulate.results import RunResult, percentile
from eventing.autoscaler.simulate.runner import POLICIES, run_matrix, run_one
from eventing.autoscaler.simulate.tracefile import (
    TraceFileError,
    load_trace_file,
    parse_trace_lines,
)
from eventing.autoscaler.simulate.traces import BUILTIN, Trace, generate
from eventing.autoscaler.spec import ScalingSpec

SHORT = 1200.0


def small_matrix(seed: int) -> list[RunResult]:
    traces = [generate(name, seed, SHORT) for name in ("step", "sparse_periodic", "on_off")]
    return run_matrix(traces, POLICIES, profile="process", seed=seed)


def test_same_seed_same_table() -> None:
    first, second = small_matrix(3), small_matrix(3)
    assert first == second
    assert format_report(first, title="t") == format_report(second, title="t")


def test_another_seed_another_table() -> None:
    assert small_matrix(3) != small_matrix(4)


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_traces_are_deterministic_sorted_and_in_range(name: str) -> None:
    trace = generate(name, 5, 1800.0)
    assert trace == generate(name, 5, 1800.0)
    assert list(trace.arrivals) == sorted(trace.arrivals)
    assert all(0.0 <= t < 1800.0 for t in trace.arrivals)
    assert trace.arrivals  # every built-in trace has events in 30 minutes


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_event_is_served_exactly_once(policy: str, profile: str) -> None:
    trace = generate("spike", 2, 900.0)
    (result,) = run_matrix([trace], [policy], profile=profile, seed=2)
    assert result.served == result.events == len(trace.arrivals)
    assert result.replica_seconds >= result.idle_replica_seconds >= 0


class Scripted:
    """A policy that sets replica counts at given times (for engine tests)."""

    dispatch: Dispatch = "spread"
    scale_in: ScaleIn = "replicaset"

    def __init__(self, script: list[tuple[float, int]], grace: float) -> None:
        self.name = "scripted"
        self.termination_grace = grace
        self.script = script
        self.i = 0

    def start(self, now: float, rng: random.Random) -> None:
        return None

    def next_wakeup(self) -> float:
        return self.script[self.i][0] if self.i < len(self.script) else 1e9

    def tick(self, now: float, view: SimView) -> int:
        replicas = self.script[self.i][1]
        self.i += 1
        return replicas

    def on_arrival(self, now: float, view: SimView) -> int | None:
        return None

    def on_completion(self, now: float, service_time: float, view: SimView) -> None:
        return None

    def on_ready(self, now: float, startup_time: float, view: SimView) -> None:
        return None


def test_events_killed_at_the_end_of_the_grace_are_redelivered_once() -> None:
    # 100 s events on 3 replicas; scale to 1 at t=20 with a 1 s grace: the 2 victims
    # are killed busy, their events go back to the queue and are served again later.
    arrivals = tuple(float(t) for t in range(10))
    trace = Trace("long", "long events", arrivals, tuple(100.0 for _ in arrivals), 50.0)
    policy = Scripted([(0.0, 3), (20.0, 1)], grace=1.0)
    result = run_one(trace, policy, profile="process", seed=1, workload=Workload())
    assert result.redelivered == 6  # spread 4-3-3; the two newest (3 + 3) are killed
    assert result.served == result.events == 10
    assert result.scale_events == 2


def test_idle_first_scale_in_drains_nothing_when_idle_replicas_exist() -> None:
    spec = ScalingSpec(concurrency_per_replica=4)
    trace = generate("step", 1, 1800.0)
    result = run_one(trace, OursPolicy(spec), profile="process", seed=1, workload=Workload())
    assert result.redelivered == 0
    assert result.served == result.events


def test_simulation_rejects_mismatched_service_times() -> None:
    with pytest.raises(ValueError, match="one service time per arrival"):
        Simulation(
            trace_name="x",
            arrivals=(1.0, 2.0),
            service_times=(1.0,),
            duration=10.0,
            policy=OursPolicy(ScalingSpec()),
            profile=PROFILES["process"],
            concurrency=1,
            seed=1,
        )


def test_cold_starts_and_delays_of_a_single_event() -> None:
    trace = Trace("one", "one event", (10.0,), (1.0,), 100.0)
    ours = run_one(trace, OursPolicy(ScalingSpec()), profile="pod", seed=1, workload=Workload())
    keda = run_one(trace, KedaPolicy(), profile="pod", seed=1, workload=Workload())
    assert ours.cold_starts == keda.cold_starts == 1
    assert 2.0 <= ours.delay_p50 <= 15.0  # a pod start, nothing else
    assert keda.delay_p50 > ours.delay_p50  # KEDA first waits for its poll


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, 0.0),
        ([1.0], 99, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 95, 4.0),
    ],
)
def test_nearest_rank_percentile(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_comparison_checks_the_goals() -> None:
    results = small_matrix(1)
    by_trace = {c.trace: c for c in compare(results)}
    assert by_trace["step"].cold_ok is None  # only judged on the sparse shapes
    assert by_trace["sparse_periodic"].cold_ok is not None
    assert all(c.cost_ratio_vs_keda is not None for c in by_trace.values())


# -- trace files -----------------------------------------------------------------------


def test_parse_trace_file_with_and_without_service_times() -> None:
    t = parse_trace_lines(["# header", "", "2.5", "0.5", "1"], "a.txt")
    assert t.arrivals == (0.5, 1.0, 2.5)
    assert t.service_times is None
    t = parse_trace_lines(["3,0.2", "1, 0.4"], "b.csv")
    assert t.arrivals == (1.0, 3.0)
    assert t.service_times == (0.4, 0.2)  # kept with their events when sorted
    assert t.duration == 4.0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1.0", "abc"], "t.txt:2: arrival time 'abc' is not a number"),
        (["1.0", "", "2,x"], "t.txt:3: service time 'x' is not a number"),
        (["1,2,3"], "t.txt:1: expected 'arrival_seconds[,service_seconds]'"),
        (["-1"], "t.txt:1: arrival time must be a finite number >= 0"),
        (["inf"], "t.txt:1: arrival time must be a finite number >= 0"),
        (["1,0.5", "2"], "t.txt:2: service time given on some lines but not others"),
        (["# only comments"], "t.txt: no events"),
    ],
)
def test_bad_trace_lines_name_the_line(lines: list[str], message: str) -> None:
    with pytest.raises(TraceFileError) as info:
        parse_trace_lines(lines, "t.txt")
    assert message in str(info.value)


# -- CLI -------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--trace", "sparse_poisson", "--duration", "900", "--policy", "ours", "--json"])
    assert cli.run(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["profile"] == "process"
    assert [r["policy"] for r in doc["results"]] == ["ours"]
    assert doc["results"][0]["trace"] == "sparse_poisson"


def test_cli_table_with_a_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("0.5,0.2\n1.0,0.3\n30,0.1\n", encoding="utf-8")
    args = parse(["--trace", str(path), "--profile", "pod", "--seed", "2"])
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert "profile pod" in out
    assert "r-s/KEDA" in out
    for policy in POLICIES:
        assert f" {policy} " in out


def test_a_trace_file_gives_the_same_numbers_wherever_it_lives(tmp_path: Path) -> None:
    """The random streams (startup times, phases, service times) are seeded by the
    file's content, not its path."""
    trace = generate("on_off", 1, 1800.0)
    text = "".join(f"{t!r}\n" for t in trace.arrivals)
    results = []
    for where in ("a/arrivals.csv", "b/c/other-name.txt"):
        path = tmp_path / where
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        runs = run_matrix([load_trace_file(path)], POLICIES, profile="pod", seed=1)
        results.append([{**r.as_dict(), "trace": None} for r in runs])
    assert results[0] == results[1]


def test_cli_reports_a_bad_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("1\n2\nthree\n", encoding="utf-8")
    assert cli.run(parse(["--trace", str(path)])) == 2
    assert f"{path}:3: arrival time 'three' is not a number" in capsys.readouterr().err


def test_cli_reports_a_missing_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(["--trace", "no-such-trace"])) == 2
    assert "cannot read trace file" in capsys.readouterr().err


def test_cli_rejects_a_bad_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(["--duration", "0"])) == 2
    assert "--duration must be > 0" in capsys.readouterr().err
