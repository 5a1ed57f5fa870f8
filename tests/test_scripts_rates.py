"""The benchmarks' rate (scripts/rates.py), which bench/scale_bench.py reports."""

from __future__ import annotations

from scripts.rates import steady_rate


def test_the_benchs_steady_rate_starts_after_the_commit_that_holds_the_ten_percent_mark():
    # Three commits of 50, 50 and 100 lines, one second apart: the 10% mark (line 20) is in the first,
    # so the window is its end (t=1) to the last commit (t=3), with the 150 lines committed after it.
    stamps = [1.0] * 50 + [2.0] * 50 + [3.0] * 100
    assert steady_rate(stamps) == 75.0
    assert steady_rate([5.0]) == 0.0 and steady_rate([]) == 0.0
