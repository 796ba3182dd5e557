"""The soak benchmark's verdict (bench/soak.py, F25): growth fails the run, noise does not.

The run itself takes minutes and is not part of the suite; what decides its exit
status is, on made-up series.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def soak() -> Iterator[ModuleType]:
    # bench/jobs.py and the tests' own jobs package share a name: the benchmark's wins
    # while its modules are imported, and the suite's modules are put back after.
    names = ("jobs", "soak", "_table")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(BENCH))
    try:
        import soak

        yield soak
    finally:
        sys.path.remove(str(BENCH))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def series(soak: ModuleType, values: list[float], *, every: float = 5 / 60) -> object:
    made = soak.Series("pool RSS", soak.RSS_TOLERANCE_MIB)
    for n, value in enumerate(values):
        made.add(n * every, value)
    return made


def test_steady_growth_above_the_tolerance_fails_the_run(soak: ModuleType) -> None:
    # 0.5 MiB a minute, as the issue saw in the Pool, sampled every 5 s for 3 minutes.
    grows = series(soak, [30 + 0.5 * n * 5 / 60 for n in range(36)])
    assert grows.verdict(0.0)[2] == "GROWS"  # type: ignore[attr-defined]


def test_a_lone_spike_on_a_noisy_machine_is_not_growth(soak: ModuleType) -> None:
    values = [30.0 + 0.01 * (n % 3) for n in range(36)]
    values[-3] = 60.0  # one sample read while the machine swapped, say
    whole, late, verdict = series(soak, values).verdict(0.0)  # type: ignore[attr-defined]
    assert verdict == "flat", (whole, late)


def test_a_step_early_in_the_measured_part_is_not_growth(soak: ModuleType) -> None:
    values = [30.0] * 6 + [34.0] * 30  # an arena taken once, then steady
    assert series(soak, values).verdict(0.0)[2] == "flat"  # type: ignore[attr-defined]


def test_too_few_samples_after_the_warm_up_cannot_pass(soak: ModuleType) -> None:
    few = series(soak, [30.0] * 6)
    assert few.verdict(0.0)[2] == "too few samples"  # type: ignore[attr-defined]


def test_the_warm_up_lasts_until_retention_holds_the_store_steady(soak: ModuleType) -> None:
    args = argparse.Namespace(minutes=2.0, warmup=0.1, keep=60.0)
    # Jobs kept 60 s, pruned every 10 s: steady after 80 s, past 10% of 2 minutes.
    assert soak.warmup_minutes(args) == pytest.approx(80 / 60)
    assert soak.warmup_minutes(argparse.Namespace(minutes=5.0, warmup=0.4, keep=30.0)) == 2.0
