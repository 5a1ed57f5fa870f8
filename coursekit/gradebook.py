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
  * a lock file per submitted notebook (flock) keeps two graders from grading the same notebook
    (per notebook, not per student: a multi-notebook assignment's notebooks are separate tasks),
    and for SQLite a lock file next to the database serializes the commits of several graders.

What nbgrader has no place for, coursekit keeps in two tables of its own in the same database,
written in the same transaction as the grades, so the two never disagree:
  * `coursekit_result`: per submitted notebook, the reason (everything worth telling the
    instructor, in words) and when it was graded;
  * `coursekit_cell_result`: per test cell, score, max score, failure message and `mode`, how
    the cell was graded ("replay" or "sandbox").
Both are keyed by nbgrader's `submitted_notebook.id`, without a foreign key constraint: nbgrader's
own deletes (`nbgrader db student remove`) must never trip over them; rows whose submission is gone
are ignored by `read_results`.  nbgrader's alembic migrations and `nbgrader db` commands only
touch the tables they know, so they tolerate these (tests/test_coursekit_scale.py runs them).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator

from nbgrader.api import Assignment, BaseCell, Grade, Gradebook, MissingEntry, Notebook, SubmittedAssignment, \
    SubmittedNotebook
from nbgrader.utils import parse_utc
from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text, create_engine, delete, \
    inspect, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SAWarning, SQLAlchemyError

from .extract import AssignmentPlan
from .read import Course, Submission, Unreadable, read_bytes

MODES = ("replay", "sandbox")  # how a test cell was graded: replayed calls, or run in the sandbox

_TABLES = MetaData()  # coursekit's own tables, beside (not inside) nbgrader's schema
RESULTS = Table(
    "coursekit_result", _TABLES,
    Column("submitted_notebook_id", String(32), primary_key=True),  # nbgrader's submitted_notebook.id
    Column("reason", Text, nullable=False),
    Column("graded_at", DateTime, nullable=False),  # UTC
)
CELL_RESULTS = Table(
    "coursekit_cell_result", _TABLES,
    Column("submitted_notebook_id", String(32), primary_key=True),
    Column("grade_id", String(128), primary_key=True),
    Column("score", Float, nullable=False),
    Column("max_score", Float, nullable=False),
    Column("message", Text),  # None when the cell passed
    Column("mode", String(16), nullable=False),
)


TIMESTAMP_BYTES = 4096  # "2026-11-25 17:05:29.123456 UTC" is 30 bytes


def lock_name(notebook: str) -> str:
    """The claim's lock file in the submission folder: one per notebook."""
    return f".{notebook}.coursekit.lock"


class Claim:
    """An exclusive, non-blocking lock on one submission, released by `release()`."""

    def __init__(self, handle: IO | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def claim(course: Course, submission: Submission) -> Claim | None:
    """Lock the submitted notebook for this grader, or None if another grader holds it."""
    folder = course.submitted_dir(submission.student, submission.assignment)
    try:
        handle = _open_lock(folder / lock_name(submission.notebook))
    except OSError:  # no folder (nothing submitted), read-only, or a symbolic link planted there
        return Claim(None)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return Claim(handle)


def _open_lock(path: Path) -> IO:
    """Open (creating) a lock file, never through a symbolic link: the grader, often root, must not
    create or open whatever a link placed there points to.  OSError (ELOOP for a link) if it cannot."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o644), "a")


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with _open_lock(path) as handle:
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
    modes: dict[str, str] = field(default_factory=dict)  # test grade id -> one of MODES; missing: "replay"

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
        with _file_lock(self.lock_path):
            _create_tables(self.gb)

    def close(self) -> None:
        self.gb.close()

    def __enter__(self) -> GradebookWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _paths(self, submission: Submission) -> tuple[Path, Path]:
        src = self.course.submitted_dir(submission.student, submission.assignment)
        dest = self.course.autograded_dir(submission.student, submission.assignment)
        return src, dest

    def timestamp(self, folder: Path) -> tuple[object | None, str | None]:
        """The timestamp.txt of a folder, as nbgrader reads it, or a note on why it is ignored."""
        return _timestamp_file(folder)[1:]

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
        raw, timestamp, note = _timestamp_file(src)
        if raw is not None:
            _atomic_write(dest / "timestamp.txt", raw)
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
            self.gb.db.flush()
            _store_details(self.gb.db.connection(), graded.id, result, note)
            self.gb.db.commit()
        return note


def _create_tables(gb: Gradebook) -> None:
    """Create coursekit's tables if missing.  After nbgrader's Gradebook() has made its own: it
    stamps alembic's version only into a database that had no tables at all."""
    try:
        _TABLES.create_all(gb.engine, checkfirst=True)
    except SQLAlchemyError:
        # Another grader created them between our check and our CREATE: fine if they exist now.
        if not set(_TABLES.tables) <= set(inspect(gb.engine).get_table_names()):
            raise


def _store_details(connection: Connection, submitted_notebook_id: str, result: GradedSubmission,
                   note: str | None) -> None:
    """Replace one submitted notebook's reason and per-cell results, in the caller's transaction."""
    for table in (RESULTS, CELL_RESULTS):
        connection.execute(delete(table).where(table.c.submitted_notebook_id == submitted_notebook_id))
    connection.execute(insert(RESULTS), [{
        "submitted_notebook_id": submitted_notebook_id,
        "reason": "; ".join(filter(None, [result.reason, note])),
        "graded_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }])
    connection.execute(insert(CELL_RESULTS), [{
        "submitted_notebook_id": submitted_notebook_id, "grade_id": grade_id, "score": score,
        "max_score": result.max_scores[grade_id], "message": result.messages.get(grade_id),
        "mode": result.modes.get(grade_id, "replay"),
    } for grade_id, score in result.scores.items()])


@dataclass(frozen=True)
class StoredCell:
    """One test cell's result as coursekit stored it."""

    grade_id: str
    score: float
    max_score: float
    message: str | None  # why it lost points; None when it passed
    mode: str  # "replay" or "sandbox"


@dataclass(frozen=True)
class StoredResult:
    """One submitted notebook's result as coursekit stored it, with its gradebook's state now."""

    student: str
    notebook: str
    reason: str
    graded_at: datetime  # UTC, naive
    cells: tuple[StoredCell, ...]  # in grade id order
    current: bool  # every stored score still equals the gradebook's auto score (False after
    #                another grader, e.g. stock `nbgrader autograde`, changed one)


def read_results(db_url: str, assignment: str) -> list[StoredResult]:
    """Every stored coursekit result of `assignment` in the gradebook at `db_url`, sorted by
    student then notebook.

    Only submissions that still exist in nbgrader's tables are returned.  `current` tells whether
    the stored scores still match the gradebook: if stock `nbgrader autograde` (or a person in
    formgrader, through the auto score) changed a cell since, the stored reason and messages
    describe an older grading and a report should not show them as today's.  A gradebook that
    coursekit never wrote to gives [].  Reads only; creates nothing.
    """
    engine = create_engine(db_url, future=True)
    try:
        with engine.connect() as connection:
            if not set(_TABLES.tables) <= set(inspect(connection).get_table_names()):
                return []
            sn, sa, nb, a = (SubmittedNotebook.__table__, SubmittedAssignment.__table__,
                             Notebook.__table__, Assignment.__table__)
            owners = (sn.join(sa, sa.c.id == sn.c.assignment_id).join(nb, nb.c.id == sn.c.notebook_id)
                      .join(a, a.c.id == sa.c.assignment_id))
            heads = connection.execute(
                select(RESULTS.c.submitted_notebook_id, sa.c.student_id, nb.c.name, RESULTS.c.reason,
                       RESULTS.c.graded_at)
                .select_from(RESULTS.join(owners, sn.c.id == RESULTS.c.submitted_notebook_id))
                .where(a.c.name == assignment)).all()
            grade, cell = Grade.__table__, BaseCell.__table__
            cells: dict[str, list[tuple[StoredCell, float | None]]] = {}
            for row in connection.execute(
                    select(CELL_RESULTS, grade.c.auto_score)
                    .select_from(CELL_RESULTS.join(owners, sn.c.id == CELL_RESULTS.c.submitted_notebook_id)
                                 .outerjoin(cell, (cell.c.notebook_id == nb.c.id)
                                            & (cell.c.name == CELL_RESULTS.c.grade_id)
                                            & (cell.c.type == "GradeCell"))
                                 .outerjoin(grade, (grade.c.cell_id == cell.c.id)
                                            & (grade.c.notebook_id == sn.c.id)))
                    .where(a.c.name == assignment)):
                stored = StoredCell(row.grade_id, row.score, row.max_score, row.message, row.mode)
                cells.setdefault(row.submitted_notebook_id, []).append((stored, row.auto_score))
    finally:
        engine.dispose()
    results = []
    for head in heads:
        mine = sorted(cells.get(head.submitted_notebook_id, []), key=lambda pair: pair[0].grade_id)
        results.append(StoredResult(
            student=head.student_id, notebook=head.name, reason=head.reason, graded_at=head.graded_at,
            cells=tuple(stored for stored, _ in mine),
            current=all(auto == stored.score for stored, auto in mine)))
    return sorted(results, key=lambda r: (r.student, r.notebook))


def _timestamp_file(folder: Path) -> tuple[bytes | None, datetime | None, str | None]:
    """(bytes, time parsed as nbgrader parses it, note on why it is ignored) of folder/timestamp.txt.
    Read like a submission (`read_bytes`): never through a symbolic link, never waiting on a FIFO."""
    path = folder / "timestamp.txt"
    if not os.path.lexists(path):
        return None, None, None
    data = read_bytes(path, TIMESTAMP_BYTES)
    if isinstance(data, Unreadable):
        return None, None, f"timestamp.txt ignored: {data.reason}"
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return data, None, None  # nbgrader: "Empty timestamp file", no time
    try:
        return data, parse_utc(text), None
    except Exception:  # dateutil raises several kinds on nonsense
        return data, None, f"timestamp.txt ignored: it is not a time ({text[:40]!r})"


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

