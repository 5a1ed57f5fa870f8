"""`coursekit status`: where the grading service stands, for instructors, read from its journal.

Reads the journal read-only (it never blocks the service, which writes in WAL mode).  Reasons can
hold a student's text (a notebook's error message), so every control character is shown escaped:
nothing a student writes can move the cursor, clear the screen or fake a line of this report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..read import CourseError, course_config, load_course
from . import journal as journal_mod
from .journal import Journal
from .policy import policy_from

__all__ = ["Status", "status", "safe"]


def safe(text: str, limit: int = 300) -> str:
    """Text for a terminal: control characters escaped, cut to `limit` characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100)
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Status:
    counts: dict[str, int]  # submissions by state: waiting, graded, held, failed
    pages: int  # feedback pages released
    latency: dict[str, float]  # p50, p95, max seconds from landing to the first page, last hour
    latency_all: dict[str, float]  # the same since the journal began
    failures: list[tuple[str, str]]  # (submission, reason), newest first

    def text(self) -> str:
        c = self.counts
        lines = [f"queue: {c.get('waiting', 0)} waiting to be graded",
                 f"graded: {c.get('graded', 0)}, held over the hourly limit: {c.get('held', 0)}, "
                 f"failed: {c.get('failed', 0)}; feedback pages released: {self.pages}"]
        for label, lat in (("last hour", self.latency), ("all", self.latency_all)):
            lines.append(f"submit-to-feedback ({label}): p50 {lat['p50']:.1f} s, p95 {lat['p95']:.1f} s, "
                         f"max {lat['max']:.1f} s over {lat['count']:.0f}")
        if self.failures:
            lines.append("failures (newest first):")
            lines += [f"  {safe(name, 120)}: {safe(reason)}" for name, reason in self.failures]
        return "\n".join(lines)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values, default=0.0),
            "count": float(len(values))}


def status(*, course_dir: Path | str = ".") -> Status:
    """The service's state for the course at `course_dir` (CourseError if it never ran there)."""
    course = load_course(Path(course_dir))
    policy = policy_from(course_config(course.root))
    path = policy.journal or journal_mod.default_path(course.root, course.db_url)
    if not path.exists():
        raise CourseError(f"no journal at {path}: `coursekit serve` has not run for this course")
    journal = Journal(path, readonly=True)
    try:
        return Status(counts=journal.counts(), pages=journal.pages_released(),
                      latency=_summary(journal.latencies(time.time() - 3600)),
                      latency_all=_summary(journal.latencies()),
                      failures=[(r.name, r.reason or "") for r in journal.failures()])
    finally:
        journal.close()
