"""Stage 5, gradebook: write results where nbgrader keeps them.

Scores go into the course's own nbgrader gradebook through nbgrader's API (`Gradebook`), the
same rows `nbgrader autograde` writes (student, submission with its timestamp, `auto_score` and
`needs_manual_grade` per grade cell, the "No response." comment on untouched solution cells), so
`nbgrader export`, formgrader and `nbgrader generate_feedback` work unchanged.  The graded
notebook goes to autograded/<student>/<assignment>/<notebook>.ipynb.

Safety:
  * one SQLAlchemy transaction per submission: nbgrader's API commits after each change, so
    while a submission is recorded those commits become flushes and one commit ends it;
  * the notebook file is written to a temporary name and renamed (`os.replace`), before the
    commit: a submission counts as done only when both exist, so a grader killed at any point
    leaves either a done submission or one the next run grades again;
  * a lock file per submission (flock) keeps two graders from grading the same submission, and
    for SQLite a lock file next to the database serializes the commits of several graders.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SAWarning

from .extract import AssignmentPlan
from .read import Course, Submission

LOCK_NAME = ".coursekit.lock"


class Claim:
    """An exclusive, non-blocking lock on one submission, released by `release()`."""

    def __init__(self, handle: IO | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def claim(course: Course, submission: Submission) -> Claim | None:
    """Lock the submission for this grader, or None if another grader holds it."""
    folder = course.submitted_dir(submission.student, submission.assignment)
    try:
        handle = open(folder / LOCK_NAME, "a")
    except OSError:
        return Claim(None)  # no folder (nothing submitted) or read-only: nothing to race for
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return Claim(handle)


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def _one_transaction(gb: Gradebook) -> Iterator[None]:
    """Turn the API's intermediate commits into flushes; commit once at the end, or roll back."""
    session = gb.db
    session.commit = session.flush  # instance attribute shadows the method until deleted
    try:
        yield
    except BaseException:
        del session.commit
        session.rollback()
        raise
    del session.commit
    session.commit()


@dataclass(frozen=True)
class GradedSubmission:
    """What a worker returns for one submission: plain data, cheap to send between machines."""

    submission: Submission
    scores: dict[str, float]  # test grade id -> score
    max_scores: dict[str, float]
    messages: dict[str, str | None]  # test grade id -> failure message
    unanswered: tuple[str, ...]  # solution cells left as the release stub (nbgrader's "No response.")
    notebook: str  # the autograded notebook, JSON
    reason: str  # everything worth telling the instructor, in words

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())


class GradebookWriter:
    """One open gradebook for a whole batch."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self.gb = Gradebook(course.db_url, course.course_id)
        url = make_url(course.db_url)
        self.lock_path = (Path(url.database).with_name(Path(url.database).name + ".coursekit-lock")
                          if url.get_backend_name() == "sqlite" and url.database else None)

    def close(self) -> None:
        self.gb.close()

    def _paths(self, submission: Submission) -> tuple[Path, Path]:
        src = self.course.submitted_dir(submission.student, submission.assignment)
        dest = self.course.autograded_dir(submission.student, submission.assignment)
        return src, dest

    def timestamp(self, folder: Path) -> tuple[object | None, str | None]:
        """The timestamp.txt of a folder, as nbgrader reads it, or a note on why it is ignored."""
        try:
            return self.course.coursedir.get_existing_timestamp(str(folder)), None
        except Exception as err:  # nbgrader's `fail` raises on an unparsable timestamp
            return None, f"timestamp.txt ignored: {err}"

    def is_done(self, submission: Submission, plan: AssignmentPlan) -> bool:
        """Graded before and unchanged since: the autograded notebook exists, every test cell has
        an auto score, and the submission is not newer than what was graded (nbgrader's rule)."""
        src, dest = self._paths(submission)
        if not (dest / f"{submission.notebook}.ipynb").is_file():
            return False
        try:
            graded = self.gb.find_submission_notebook(submission.notebook, submission.assignment,
                                                      submission.student)
            tests = {c.grade_id for c in plan.tests}
            scored = all(g.auto_score is not None for g in graded.grades if g.name in tests)
        except MissingEntry:
            scored = False
        finally:
            self.gb.db.rollback()  # end the read transaction: hold no SQLite lock between submissions
        new, old = self.timestamp(src)[0], self.timestamp(dest)[0]
        return scored and not (new is not None and old is not None and new > old)

    def record(self, result: GradedSubmission, plan: AssignmentPlan) -> str | None:
        """Write the autograded notebook, then commit the scores in one transaction.
        Returns a note for the reason (e.g. an unreadable timestamp), or None."""
        sub = result.submission
        src, dest = self._paths(sub)
        dest.mkdir(parents=True, exist_ok=True)
        _atomic_write(dest / f"{sub.notebook}.ipynb", result.notebook.encode("utf-8"))
        timestamp, note = self.timestamp(src)
        if (src / "timestamp.txt").is_file():
            _atomic_write(dest / "timestamp.txt", (src / "timestamp.txt").read_bytes())
        with _file_lock(self.lock_path), _one_transaction(self.gb), warnings.catch_warnings():
            # nbgrader's add_submission builds rows before adding them to the session, and
            # SQLAlchemy warns about it; stock `nbgrader autograde` does the same.
            warnings.simplefilter("ignore", SAWarning)
            self.gb.update_or_create_student(sub.student)
            self.gb.update_or_create_submission(sub.assignment, sub.student,
                                                **({"timestamp": timestamp} if timestamp else {}))
            graded = self.gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student)
            for grade in graded.grades:
                if grade.name in result.scores:
                    grade.auto_score = result.scores[grade.name]
                    # as SaveAutoGrades: a manual score, or no auto score, needs a human look
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            for comment in graded.comments:
                if comment.name in plan.graded.values():
                    comment.auto_comment = "No response." if comment.name in result.unanswered else None
            self.gb.db.commit()
        return note


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:  # no fsync: the rename is what makes a kill harmless
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

