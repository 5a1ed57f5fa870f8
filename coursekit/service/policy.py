"""The grading service's settings: ``c.Serve.*`` in the course's nbgrader_config.py.

Configured the way `coursekit.config.CourseKit` and nbgrader configure themselves: traits of a
``Configurable`` with help strings (``coursekit config`` lists them too).  `Policy` is the result
as plain frozen data, read once when the service starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, validate
from traitlets.config import Config, Configurable

__all__ = ["Policy", "Serve", "policy_from"]


@dataclass(frozen=True)
class Policy:
    """What `coursekit serve` does, as plain data (see `Serve` for the meaning of each)."""

    assignments: tuple[str, ...] = ()  # empty: every assignment a submission names
    show_hidden: tuple[str, ...] = ()
    per_hour: int = 6
    per_hour_of: dict[str, int] = field(default_factory=dict)
    force_polling: bool = False
    poll_seconds: float = 1.0
    rescan_seconds: float = 10.0
    journal: Path | None = None  # None: beside the gradebook (see journal.default_path)
    workers: int = 0  # 0: pipeline.default_workers()
    check_owner: bool = True

    def limit_of(self, assignment: str) -> int:
        """Graded submissions per student and hour before the due date (0: no limit)."""
        return self.per_hour_of.get(assignment, self.per_hour)

    def serves(self, assignment: str) -> bool:
        return not self.assignments or assignment in self.assignments


class Serve(Configurable):
    """The grading service's policy: ``c.Serve.<name>`` in nbgrader_config.py."""

    assignments = List(Unicode(), help="""
        Assignments the service grades as soon as they are submitted.  Empty (the default): every
        assignment a submission in the exchange names, if the gradebook knows it.""").tag(config=True)

    show_hidden_tests = List(Unicode(), help="""
        Assignments whose hidden tests show their results (pass or fail, first line of the
        message, points) in the feedback before the due date, e.g. practice assignments.  For
        the others, a hidden test shows only "graded after the due date" until then: no result,
        no message, no points.""").tag(config=True)

    per_hour = Integer(6, help="""
        Graded submissions per student and assignment in any hour before the due date (0: no
        limit).  A submission over the limit is kept, not graded: its feedback says when the
        student's next submission will be graded, and it is graded at the due date if it is
        still the student's last.  After the due date every submission is graded.""").tag(config=True)

    per_hour_of = Dict(value_trait=Integer(), key_trait=Unicode(), help="""
        Per-assignment values of per_hour, e.g. {"practice": 0, "exam": 2}.""").tag(config=True)

    force_polling = Bool(False, help="""
        Look for new submissions by polling the exchange's inbound folder instead of waiting for
        inotify events.  Needed when the exchange is on NFS (or another network file system):
        inotify does not see files that other machines write there.""").tag(config=True)

    poll_seconds = Float(1.0, help="Seconds between two looks at the inbound folder when polling."
                         ).tag(config=True)

    rescan_seconds = Float(10.0, help="""
        Seconds between two full scans of the inbound folder even without any event: a safety
        net for events a watcher misses.""").tag(config=True)

    journal = Unicode("", help="""
        The service's own state (a SQLite file): every submission it saw, its grade, the
        feedback it released.  Default: beside a SQLite gradebook (gradebook.db ->
        gradebook.db.serve.sqlite), or serve.sqlite in the course folder for another
        database.""").tag(config=True)

    workers = Integer(0, help="Grading processes of the service (0: c.CourseKit.workers, which `coursekit "
                          "autograde` uses too; if that is 0 as well, one per core and one more).").tag(config=True)

    check_owner = Bool(True, help="""
        Collect an inbound folder only if it belongs to the Unix account named as the student in
        the folder's name (nbgrader names a submission after the account that made it), or to
        root or the service's own account (an instructor's `nbgrader submit --student=ID`).
        Anyone may make a folder in inbound/ and choose its name: without this check a student
        can submit in a classmate's name, and that submission becomes the classmate's latest and
        replaces their grade.  A refused folder is kept in inbound/ and shows in `coursekit
        status` as a failure with its reason.  Turn it off (False) only on hubs where every
        student's server runs as the same account (e.g. Zero to JupyterHub's containers, all
        `jovyan`): there the owner says nothing about who submitted.""").tag(config=True)

    @validate("poll_seconds", "rescan_seconds")
    def _positive(self, proposal: dict) -> float:
        if not proposal["value"] > 0:
            raise TraitError(f"c.Serve.{proposal['trait'].name} must be positive, got {proposal['value']!r}")
        return proposal["value"]

    @validate("per_hour", "workers")
    def _not_negative(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"c.Serve.{proposal['trait'].name} must be 0 or more, got {proposal['value']!r}")
        return proposal["value"]

    def policy(self) -> Policy:
        return Policy(assignments=tuple(self.assignments), show_hidden=tuple(self.show_hidden_tests),
                      per_hour=self.per_hour, per_hour_of=dict(self.per_hour_of),
                      force_polling=self.force_polling, poll_seconds=self.poll_seconds,
                      rescan_seconds=self.rescan_seconds, journal=Path(self.journal) if self.journal else None,
                      workers=self.workers, check_owner=self.check_owner)


def policy_from(config: Config) -> Policy:
    """The service's policy from a loaded nbgrader configuration; ValueError names a wrong value."""
    try:
        return Serve(config=config).policy()
    except TraitError as error:
        raise ValueError(str(error)) from None
