"""Stage 5, gradebook: write results where nbgrader keeps them.

Scores go into the course's own nbgrader gradebook, in nbgrader's schema and with the values
`nbgrader autograde` writes (student, submission with its timestamp, `auto_score` and
`needs_manual_grade` per grade cell, the "No response." comment on untouched solution cells), so
`nbgrader export`, formgrader and `nbgrader generate_feedback` work unchanged.  The rows are written
with SQLAlchemy Core, many submissions per transaction (`GradebookWriter.record_many`): nbgrader's
ORM API costs several round trips and a commit per change, which capped a whole class at the
speed of one process writing.  The graded notebook goes to
autograded/<student>/<assignment>/<notebook>.ipynb.

Safety:
  * a submission's rows are all in one transaction (with other submissions' rows, never split);
    if a batch fails, each of its submissions is written alone, so one bad one costs only itself;
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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, Iterator

from nbgrader.api import (
    Assignment,
    BaseCell,
    Comment,
    Grade,
    Gradebook,
    MissingEntry,
    Notebook,
    Student,
    SubmittedAssignment,
    SubmittedNotebook,
    new_uuid,
)
from nbgrader.utils import parse_utc
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from .extract import AssignmentPlan
from .read import Course, Submission, Unreadable, read_bytes
from .score import GradedSubmission

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
# nbgrader autograde copies every other file of the submission folder into autograded/, and the
# exchange's submission_secret.txt must be there for release_feedback to name the feedback file.
# coursekit copies the folder's regular files up to this size, never through a symbolic link.
SUPPORT_FILE_BYTES = 1 << 20
NBGRADER_IGNORED = {".ipynb_checkpoints", "__pycache__", "feedback"}  # CourseDirectory.ignore


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


class GradebookWriter:
    """One connection to the gradebook for a whole batch, writing through SQLAlchemy Core.

    nbgrader's schema, rows and values are kept exactly (what `Gradebook.add_submission` and
    `SaveAutoGrades` would write), but many submissions go in one transaction with a few
    multi-row statements, where nbgrader's ORM API makes several round trips and a commit per
    change.  What is the same for every submission (the assignment's notebooks and cell ids) is
    read once.  If a batch fails, each of its submissions is written again in a transaction of
    its own, so one bad submission costs only itself.
    """

    def __init__(self, course: Course) -> None:
        self.course = course
        # nbgrader's Gradebook creates its schema (and stamps alembic) in a new database and
        # checks the course row; coursekit's tables come after, never before.
        with Gradebook(course.db_url, course.course_id):
            pass
        url = make_url(course.db_url)
        batch = {"executemany_mode": "values_plus_batch"} if url.get_driver_name() == "psycopg2" else {}
        self.engine = create_engine(course.db_url, future=True, **batch)
        self.lock_path = (Path(url.database).with_name(Path(url.database).name + ".coursekit-lock")
                          if url.get_backend_name() == "sqlite" and url.database else None)
        with _file_lock(self.lock_path):
            _create_tables(self.engine)
        self._structures: dict[str, _Structure] = {}

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> GradebookWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _paths(self, submission: Submission) -> tuple[Path, Path]:
        src = self.course.submitted_dir(submission.student, submission.assignment)
        dest = self.course.autograded_dir(submission.student, submission.assignment)
        return src, dest

    def timestamp(self, folder: Path) -> tuple[datetime | None, str | None]:
        """The timestamp.txt of a folder, as nbgrader reads it, or a note on why it is ignored."""
        return _timestamp_file(folder)[1:]

    def is_done(self, submission: Submission, plan: AssignmentPlan) -> bool:
        """Graded before and unchanged since: the autograded notebook exists, every test cell has
        an auto score, and the submission is not newer than what was graded (nbgrader's rule).
        Asks the database only when the autograded notebook exists (never, on a first run)."""
        src, dest = self._paths(submission)
        if not (dest / f"{submission.notebook}.ipynb").is_file():
            return False
        tests = [c.grade_id for c in plan.tests]
        grade, cell, sn, nb, sa, a = (Grade.__table__, BaseCell.__table__, SubmittedNotebook.__table__,
                                      Notebook.__table__, SubmittedAssignment.__table__, Assignment.__table__)
        with self.engine.connect() as connection:  # a short read: holds no SQLite lock afterwards
            scored = connection.scalar(
                select(func.count()).select_from(
                    grade.join(cell, cell.c.id == grade.c.cell_id).join(sn, sn.c.id == grade.c.notebook_id)
                    .join(nb, nb.c.id == sn.c.notebook_id).join(sa, sa.c.id == sn.c.assignment_id)
                    .join(a, a.c.id == sa.c.assignment_id))
                .where(a.c.name == submission.assignment, sa.c.student_id == submission.student,
                       nb.c.name == submission.notebook, cell.c.type == "GradeCell",
                       cell.c.name.in_(tests), grade.c.auto_score.isnot(None)))
        new, old = self.timestamp(src)[0], self.timestamp(dest)[0]
        return scored == len(tests) and not (new is not None and old is not None and new > old)

    def record(self, result: GradedSubmission, plan: AssignmentPlan) -> str | None:
        """Write one submission (see `record_many`); raise what kept it out of the gradebook.
        Returns a note for the reason (e.g. an unreadable timestamp), or None."""
        [outcome] = self.record_many([(result, plan)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.note

    def record_many(self, items: list[tuple[GradedSubmission, AssignmentPlan]]) -> list[Recorded | Exception]:
        """Write the autograded notebooks, then commit all the submissions' scores, reasons and
        cell results in one transaction.  Per item, in order: what was recorded, or the error that
        kept that submission out of the gradebook (it is then not done, and a re-run grades it)."""
        outcomes: list[Recorded | Exception] = []
        for result, plan in items:
            try:
                outcomes.append(self._write_files(result, plan))
            except Exception as error:  # e.g. disk full: this submission only
                outcomes.append(error)
        ready = [o for o in outcomes if isinstance(o, Recorded)]
        if not ready:
            return outcomes
        try:
            self._commit(ready)
        except Exception as error:
            if len(ready) == 1:
                return [error if o is ready[0] else o for o in outcomes]
            # find the culprit: each submission again, in a transaction of its own
            retried = {}
            for one in ready:
                try:
                    self._commit([one])
                except Exception as single:
                    retried[id(one)] = single
            return [retried.get(id(o), o) if isinstance(o, Recorded) else o for o in outcomes]
        return outcomes

    def _write_files(self, result: GradedSubmission, plan: AssignmentPlan) -> Recorded:
        sub = result.submission
        src, dest = self._paths(sub)
        dest.mkdir(parents=True, exist_ok=True)
        _atomic_write(dest / f"{sub.notebook}.ipynb", result.notebook)
        raw, timestamp, note = _timestamp_file(src)
        if raw is not None:
            _atomic_write(dest / "timestamp.txt", raw)
        skipped = _copy_support_files(src, dest)
        if skipped:
            note = "; ".join(filter(None, [note, f"not copied to autograded/: {skipped}"]))
        comments = {name: "No response." if name in result.unanswered else None
                    for name in (*plan.answer_cells, *result.unanswered)}
        return Recorded(result, plan, timestamp, note, comments)

    def _structure(self, connection: Connection, assignment: str) -> _Structure:
        """The assignment's notebooks and cells as the gradebook has them: read once per writer."""
        if assignment not in self._structures:
            a, nb, cell = Assignment.__table__, Notebook.__table__, BaseCell.__table__
            assignment_id = connection.scalar(select(a.c.id).where(a.c.name == assignment))
            if assignment_id is None:
                raise MissingEntry(f"no assignment {assignment!r} in the gradebook")
            notebooks: dict[str, str] = dict(connection.execute(select(nb.c.name, nb.c.id).where(nb.c.assignment_id == assignment_id)).all())
            cells: dict[tuple[str, str], dict[str, str]] = {}
            for row in connection.execute(select(cell.c.notebook_id, cell.c.type, cell.c.name, cell.c.id)
                                          .where(cell.c.notebook_id.in_(list(notebooks.values())))):
                cells.setdefault((row.notebook_id, row.type), {})[row.name] = row.id
            self._structures[assignment] = _Structure(assignment_id, notebooks, cells)
        return self._structures[assignment]

    def _commit(self, batch: list[Recorded]) -> None:
        with _file_lock(self.lock_path), self.engine.begin() as connection:
            _write_rows(connection, batch, self._structure)


@dataclass(frozen=True)
class Recorded:
    """A submission on its way into the gradebook: its result and what the gradebook rows need."""

    result: GradedSubmission
    plan: AssignmentPlan
    timestamp: datetime | None  # from timestamp.txt, UTC
    note: str | None  # for the reason, e.g. "timestamp.txt ignored: ..."
    comments: dict[str, str | None]  # solution cell grade id -> auto comment

    @property
    def reason(self) -> str:
        return "; ".join(filter(None, [self.result.reason, self.note]))


@dataclass(frozen=True)
class _Structure:
    assignment_id: str
    notebooks: dict[str, str]  # notebook name -> notebook id
    cells: dict[tuple[str, str], dict[str, str]]  # (notebook id, "GradeCell"/...) -> {name: cell id}

    def of(self, notebook_id: str, kind: str) -> dict[str, str]:
        return self.cells.get((notebook_id, kind), {})


def _write_rows(connection: Connection, batch: list[Recorded],  # noqa: C901, PLR0912 (one pass over nbgrader's tables, in their foreign-key order)
                structure_of: Callable[[Connection, str], _Structure]) -> None:
    """All rows of a batch of submissions, in the caller's transaction.

    A submission new to the gradebook gets the rows `Gradebook.add_submission` would create
    (a submitted notebook for every notebook of the assignment, a grade per grade and task cell, a
    comment per solution and task cell), already holding their final values.  One graded before
    gets its rows updated as `SaveAutoGrades` would.  Then coursekit's own rows are replaced.
    """
    student, sa, sn, grade, comment = (Student.__table__, SubmittedAssignment.__table__,
                                       SubmittedNotebook.__table__, Grade.__table__, Comment.__table__)
    names = sorted({r.result.submission.student for r in batch})
    known = set(connection.scalars(select(student.c.id).where(student.c.id.in_(names))))
    if len(known) < len(names):
        connection.execute(insert(student), [{"id": name} for name in names if name not in known])

    new: dict[str, list] = {"sa": [], "sn": [], "grade": [], "comment": []}
    grade_updates: list[dict] = []
    comment_updates: list[dict] = []
    timestamp_updates: list[dict] = []
    notebook_ids: dict[int, str] = {}  # id(Recorded) -> submitted notebook id
    for assignment in sorted({r.result.submission.assignment for r in batch}):
        mine = [r for r in batch if r.result.submission.assignment == assignment]
        structure = structure_of(connection, assignment)
        existing: dict[str, str] = dict(connection.execute(
            select(sa.c.student_id, sa.c.id).where(sa.c.assignment_id == structure.assignment_id,
                                                   sa.c.student_id.in_({r.result.submission.student for r in mine}))).all())
        submitted = {(row.assignment_id, row.notebook_id): row.id for row in connection.execute(
            select(sn.c.assignment_id, sn.c.notebook_id, sn.c.id).where(sn.c.assignment_id.in_(list(existing.values()))))}
        graded = {(r.result.submission.student, r.result.submission.notebook): r for r in mine}
        for name in dict.fromkeys(r.result.submission.student for r in mine):
            timestamps = [r.timestamp for r in mine if r.result.submission.student == name and r.timestamp]
            if name not in existing:
                existing[name] = new_uuid()
                new["sa"].append({"id": existing[name], "assignment_id": structure.assignment_id,
                                  "student_id": name, "timestamp": timestamps[-1] if timestamps else None})
            elif timestamps:
                timestamp_updates.append({"sa_id": existing[name], "ts": timestamps[-1]})
            for notebook, notebook_id in structure.notebooks.items():
                recorded = graded.get((name, notebook))
                key = (existing[name], notebook_id)
                if key not in submitted:  # a new submission, or a notebook added to the assignment since
                    submitted[key] = new_uuid()
                    new["sn"].append({"id": submitted[key], "assignment_id": existing[name], "notebook_id": notebook_id})
                    _new_cells(new, submitted[key], notebook_id, structure, recorded)
                elif recorded is not None:
                    _updated_cells(grade_updates, comment_updates, submitted[key], notebook_id, structure, recorded)
                if recorded is not None:
                    notebook_ids[id(recorded)] = submitted[key]

    for table, rows in ((sa, new["sa"]), (sn, new["sn"]), (grade, new["grade"]), (comment, new["comment"])):
        if rows:
            connection.execute(insert(table), rows)
    if timestamp_updates:
        connection.execute(update(sa).where(sa.c.id == bindparam("sa_id")).values(timestamp=bindparam("ts")),
                           timestamp_updates)
    if grade_updates:  # as SaveAutoGrades: a manual score, or no auto score, needs a human look
        connection.execute(update(grade).where(grade.c.notebook_id == bindparam("sn_id"),
                                               grade.c.cell_id == bindparam("cell"))
                           .values(auto_score=bindparam("score"),
                                   needs_manual_grade=or_(grade.c.manual_score.isnot(None), bindparam("unscored"))),
                           grade_updates)
    if comment_updates:
        connection.execute(update(comment).where(comment.c.notebook_id == bindparam("sn_id"),
                                                 comment.c.cell_id == bindparam("cell"))
                           .values(auto_comment=bindparam("text")), comment_updates)
    _store_details(connection, [(notebook_ids[id(r)], r) for r in batch])


def _new_cells(new: dict[str, list], sn_id: str, notebook_id: str, structure: _Structure,
               recorded: Recorded | None) -> None:
    """Rows of one new submitted notebook, as `add_submission` makes them, with final values."""
    scores = {**recorded.result.manual_scores, **recorded.result.scores} if recorded else {}
    comments = recorded.comments if recorded else {}
    for name, cell_id in (structure.of(notebook_id, "GradeCell") | structure.of(notebook_id, "TaskCell")).items():
        score = scores.get(name) if name in structure.of(notebook_id, "GradeCell") else None
        new["grade"].append({"id": new_uuid(), "notebook_id": sn_id, "cell_id": cell_id, "auto_score": score,
                             "needs_manual_grade": score is None})
    for kind in ("SolutionCell", "TaskCell"):
        for name, cell_id in structure.of(notebook_id, kind).items():
            text = comments.get(name) if kind == "SolutionCell" else None
            new["comment"].append({"id": new_uuid(), "notebook_id": sn_id, "cell_id": cell_id, "auto_comment": text})


def _updated_cells(grade_updates: list, comment_updates: list, sn_id: str, notebook_id: str,
                   structure: _Structure, recorded: Recorded) -> None:
    grade_cells, solution_cells = structure.of(notebook_id, "GradeCell"), structure.of(notebook_id, "SolutionCell")
    for name, score in {**recorded.result.manual_scores, **recorded.result.scores}.items():
        if name in grade_cells:
            grade_updates.append({"sn_id": sn_id, "cell": grade_cells[name], "score": score,
                                  "unscored": score is None})
    for name, text in recorded.comments.items():
        if name in solution_cells:
            comment_updates.append({"sn_id": sn_id, "cell": solution_cells[name], "text": text})


def _create_tables(engine: Engine) -> None:
    """Create coursekit's tables if missing.  After nbgrader's Gradebook() has made its own: it
    stamps alembic's version only into a database that had no tables at all."""
    try:
        _TABLES.create_all(engine, checkfirst=True)
    except SQLAlchemyError:
        # Another grader created them between our check and our CREATE: fine if they exist now.
        if not set(_TABLES.tables) <= set(inspect(engine).get_table_names()):
            raise


def _store_details(connection: Connection, batch: list[tuple[str, Recorded]]) -> None:
    """Replace the submitted notebooks' reasons and per-cell results, in the caller's transaction."""
    ids = [sn_id for sn_id, _ in batch]
    for table in (RESULTS, CELL_RESULTS):
        connection.execute(delete(table).where(table.c.submitted_notebook_id.in_(ids)))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    connection.execute(insert(RESULTS), [
        {"submitted_notebook_id": sn_id, "reason": recorded.reason, "graded_at": now} for sn_id, recorded in batch])
    cells = [{"submitted_notebook_id": sn_id, "grade_id": grade_id, "score": score,
              "max_score": recorded.result.max_scores[grade_id], "message": recorded.result.messages.get(grade_id),
              "mode": recorded.result.modes.get(grade_id, "replay")}
             for sn_id, recorded in batch for grade_id, score in recorded.result.scores.items()]
    if cells:
        connection.execute(insert(CELL_RESULTS), cells)


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


def _copy_support_files(src: Path, dest: Path) -> str | None:
    """Copy the submission folder's other files (submission_secret.txt, a student's data file) to
    the autograded folder, as nbgrader autograde does; why any were left out, or None.

    Only regular files at the top level, read like a submission (`read_bytes`: no symbolic links,
    no FIFOs) and at most SUPPORT_FILE_BYTES each: the grader is often root and the folder is the
    student's."""
    skipped = []
    for path in sorted(src.iterdir()):
        name = path.name
        if (name.endswith((".ipynb", ".coursekit.lock", ".pyc")) or name == "timestamp.txt"
                or name in NBGRADER_IGNORED):
            continue
        if path.is_dir() and not path.is_symlink():
            skipped.append(f"{name}/ (a folder)")
            continue
        if path.lstat().st_size > SUPPORT_FILE_BYTES:
            skipped.append(f"{name} (over {SUPPORT_FILE_BYTES >> 20} MiB)")
            continue
        data = read_bytes(path, SUPPORT_FILE_BYTES)
        if isinstance(data, Unreadable):
            skipped.append(f"{name} ({data.reason})")
            continue
        _atomic_write(dest / name, data)
    return ", ".join(skipped) or None


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

