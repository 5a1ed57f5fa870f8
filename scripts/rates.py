"""How the benchmarks turn the times at which results arrived into a rate (bench/scale_bench.py);
here, not in bench/, so that tests/ can check it without importing a benchmark."""

from __future__ import annotations


def steady_rate(stamps: list[float], gap: float = 0.05) -> float:
    """Submissions/s from the commit holding the 10% mark to the last commit.

    Results are reported as each batch commits (up to 100 submissions, at least every second), so
    a batch's lines arrive together: the window starts after the last line of the batch that holds
    the 10% mark (lines less than `gap` seconds apart), and counts only what was committed after it.
    Starting at the mark itself would count the rest of its batch as graded in no time, which
    inflates the rate of a small class."""
    if not stamps:
        return 0.0
    start = len(stamps) // 10
    while start + 1 < len(stamps) and stamps[start + 1] - stamps[start] < gap:
        start += 1
    window = stamps[-1] - stamps[start]
    return (len(stamps) - 1 - start) / window if window > 0 else 0.0
