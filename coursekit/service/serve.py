"""`coursekit serve`: grade each submission as it lands in the exchange and release its feedback.

One long-running process per course, in the course folder (a JupyterHub managed service, see
jupyterhub/jupyterhub_config.py).  Its steps, each a small function below:

    watch     watchfiles on the exchange's inbound folder (inotify, or polling: c.Serve.force_polling
              for NFS), plus a full scan every c.Serve.rescan_seconds as a safety net
    intake    a folder is complete once nbgrader's submit wrote submission_secret.txt (its last
              file); it is collected into submitted/ as `nbgrader collect --update` would (same
              timestamp.txt, only if newer than what is there: the latest counts) and journalled; a
              folder whose name would lead out of submitted/ (`..`, a leading dot, a control
              character) or names no assignment of source/ is journalled as failed, never collected;
              so is a symbolic link, and (c.Serve.check_owner) a folder that the account named as
              its student did not make (nor root): a student submitting in a classmate's name
    policy    before the due date at most c.Serve.per_hour graded submissions per student and hour;
              one over the limit is kept ("held") and its page says when the next will be graded
    grade     the same pipeline as `coursekit autograde` (pipeline.grade_submission in a LocalPool
              of pre-warmed sandboxed workers); the gradebook gets the student's latest submission
              only (GradebookWriter, as autograde writes it: late flags follow the gradebook's due date)
    page      coursekit.feedback.shown_tests decides what the student may see, service.page lays it out
    release   the page goes to <exchange>/<course>/feedback/<md5(secret + notebook)>.html, the file
              nbgrader's release_feedback writes and the student's Fetch Feedback looks for; one page
              per notebook, and the submission is journalled graded once all of its notebooks are
    due date  once the gradebook's due date passes, every student's last submission (and every held
              one) is graded again and gets its final page, hidden tests included

Every step is journalled (service.journal) before the next, so SIGKILL at any moment and a restart
lose nothing: waiting submissions are graded, stored pages not yet released are released with the
bytes stored, a page once stored for a phase is never made again.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
import stat
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence, TextIO

from nbgrader.api import Assignment
from nbgrader.exchange.default import Exchange
from nbgrader.utils import ignore_patterns, notebook_hash, parse_utc
from sqlalchemy import select

from .. import extract, pipeline, read
from .. import pool as pool_mod
from ..feedback import hidden_tests, shown_tests
from ..gradebook import GradebookWriter, GradedSubmission
from ..pool import LocalPool, WorkerDied
from ..printable import printable
from ..read import CourseError, Submission, Unreadable, course_config, load_course, read_bytes
from . import journal as journal_mod
from .journal import Journal, Row
from .page import PageData, render
from .policy import Policy, policy_from

HOUR = 3600.0
SECRET_BYTES = 4096  # nbgrader writes 128 hex characters
FEEDBACK_DIR_MODE = 0o711  # as nbgrader's release_feedback: students open the file they can name, list nothing
FEEDBACK_FILE_MODE = 0o644
DUE_CHECK_SECONDS = 1.0


@dataclass
class Budget:
    """The bytes a collected folder may still hold (c.CourseDirectory.max_dir_size)."""
    left: int

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise CourseError("the folder holds more than c.CourseDirectory.max_dir_size allows; "
                              "the student resubmits without the large files")


def copy_file(name: str, dir_fd: int, dest: Path, budget: Budget) -> None:
    """Copy the regular file `name` of the open folder `dir_fd` to `dest`, never through a link,
    never more bytes than the budget holds (a file may grow while it is copied)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as source, open(dest, "xb") as target:
        while chunk := source.read(1 << 20):
            budget.spend(len(chunk))
            target.write(chunk)


def parse_name(name: str) -> tuple[str, str, str] | None:
    """(student, assignment, timestamp) of an inbound folder's name, split as nbgrader collect splits it."""
    parts = name.rsplit("+", 3)
    if len(parts) < 3:
        return None
    try:
        parse_utc(parts[2])
    except Exception:  # dateutil raises several kinds on nonsense
        return None
    return parts[0], parts[1], parts[2]


@dataclass
class Job:
    row: Row
    notebook: str
    phase: str  # "early" or "final"
    plan: extract.AssignmentPlan
    data: bytes | Unreadable
    tries: int = 1


@dataclass
class Final:
    """An assignment's regrade at its due date, while it runs."""

    duedate: str
    names: set[str] = field(default_factory=set)  # submissions still to get their final page


class Service:
    def __init__(self, course_dir: Path, insecure: bool = False, log: TextIO = sys.stderr) -> None:
        self.course = load_course(course_dir)
        config = course_config(self.course.root)
        try:
            self.policy: Policy = policy_from(config)
        except ValueError as error:
            raise CourseError(f"{self.course.root / 'nbgrader_config.py'}: {error}") from None
        self.exchange = Exchange(coursedir=self.course.coursedir, config=config)
        course_path = Path(self.exchange.root) / self.course.course_id
        self.inbound, self.outbound = course_path / "inbound", course_path / "feedback"
        self.insecure, self.log_file = insecure, log
        path = self.policy.journal or journal_mod.default_path(self.course.root, self.course.db_url)
        self.journal = Journal(path)
        for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if part.exists():  # the grader account reads it with `coursekit status`
                self.give(part)
        self.writer = GradebookWriter(self.course)
        self.known = self.journal.known()
        self.plans: dict[str, dict[str, extract.AssignmentPlan] | str] = {}  # or why it cannot be graded
        self.in_flight: dict[Future, Job] = {}
        self.finals: dict[str, Final] = {}
        self.sums: dict[tuple[str, str], tuple[float, float]] = {}  # (submission, phase): notebooks graded so far
        self.wake = threading.Event()
        self.stop = threading.Event()
        self._due: dict[str, datetime | None] = {}
        self._due_checked = 0.0
        self.workers = self.policy.workers or self.course.settings.workers or pipeline.default_workers()
        self.pool = LocalPool(self.workers, pipeline.start_pool_worker,
                              (self.course.settings.sandbox_preload, insecure),
                              task_seconds=self.course.settings.worker_seconds, note=self.log)

    # --- small helpers ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        self.log_file.write(f"[coursekit serve {stamp}] {message}\n")
        self.log_file.flush()

    def plans_of(self, assignment: str) -> dict[str, extract.AssignmentPlan] | str:
        if assignment not in self.plans:
            try:
                with pipeline.Worker() as planner:  # runs the master's own tests (trusted) in this process
                    self.plans[assignment] = {nb: pipeline.plan_notebook(self.course, assignment, nb, planner)
                                              for nb in extract.notebooks_of(self.course, assignment)}
            except (CourseError, extract.PlanError) as error:
                self.plans[assignment] = f"the assignment cannot be graded: {error}"
        return self.plans[assignment]

    def gradebook_assignments(self) -> list[str]:
        self.due("")
        return [a for a in self._due if self.course.source_dir(a).is_dir()]

    def due(self, assignment: str) -> datetime | None:
        """The gradebook's due date (naive UTC, as nbgrader stores it), read at most once a second."""
        now = time.monotonic()
        if now - self._due_checked > DUE_CHECK_SECONDS:
            table = Assignment.__table__
            with self.writer.engine.connect() as connection:
                self._due = dict(connection.execute(select(table.c.name, table.c.duedate)).all())
            self._due_checked = now
        return self._due.get(assignment)

    def past_due(self, assignment: str) -> bool:
        due = self.due(assignment)
        return due is not None and datetime.now(timezone.utc).replace(tzinfo=None) >= due

    # --- intake -------------------------------------------------------------------------------------
    def intake(self) -> None:
        """Journal every complete submission not seen before, after collecting it."""
        try:
            names = sorted(entry.name for entry in os.scandir(self.inbound) if entry.name not in self.known)
        except FileNotFoundError:
            return
        new, refused = [], []
        for name in names:
            parsed = parse_name(name)
            if parsed is None or not self.policy.serves(parsed[1]):
                self.known.add(name)  # not a submission (or not ours): never looked at again
                continue
            why = self.refusal(*parsed) or self.owner_refusal(name, parsed[0])
            if why:
                refused.append(((name, *parsed), why))
                continue
            secret = self.inbound_file(name, parsed[0], "submission_secret.txt", SECRET_BYTES)
            if isinstance(secret, Unreadable) or not secret.strip():
                continue  # nbgrader's submit writes the secret last: still being copied
            try:
                self.collect(name, *parsed)
            except Exception as error:  # e.g. a full disk: not journalled, so the next scan tries again
                self.log(f"{name}: could not be collected ({type(error).__name__}: {error}); trying again later")
                continue
            new.append((name, *parsed))
        if new:
            self.journal.add(new, time.time())
            self.known.update(n for n, *_ in new)
            self.log(f"{len(new)} new submission(s)")
        for row, why in refused:  # journalled as failures, so the instructor sees them (coursekit status)
            self.journal.add([row], time.time())
            self.journal.mark(row[0], "failed", why)
            self.known.add(row[0])
            self.log(f"{printable(row[0])}: {printable(why)}")

    def refusal(self, student: str, assignment: str, timestamp: str) -> str | None:
        """Why a folder's name cannot be collected, or None.  Anyone may create a folder in inbound/
        and choose its name, and the name becomes the path submitted/<student>/<assignment>: a part
        such as `..` would put it elsewhere in the course folder (over source/, say), as root."""
        for what, part in (("student", student), ("assignment", assignment)):
            if not part or part.startswith(".") or printable(part) != part or os.sep in part:
                return (f"not collected: the {what} {part!r} cannot be a folder under submitted/ (empty, "
                        "a leading dot or a control character)")
        if not self.course.source_dir(assignment).is_dir():
            return f"not collected: the course has no assignment {assignment!r} (no folder in source/)"
        return None

    def owner_refusal(self, name: str, student: str) -> str | None:
        """Why the folder inbound/`name` may not be collected in `student`'s name, or None (also when
        it is gone again: the secret is then not found, and no later scan lists it)."""
        try:
            fd = self.open_folder(name, student)
        except FileNotFoundError:
            return None
        if isinstance(fd, Unreadable):
            return fd.reason
        os.close(fd)
        return None

    def open_folder(self, name: str, student: str) -> int | Unreadable:
        """inbound/`name` opened as a folder, never through a symbolic link, and checked on the open
        folder; the caller closes it.  Its owner may rename it and put a link in its place at any
        moment after intake (the exchange lets every account rename in inbound/), so everything the
        service reads or copies from it goes through this descriptor, never through the path again.

        nbgrader's submit names a folder after the Unix account that runs it, and the exchange lets
        any account make a folder there with any name: with c.Serve.check_owner the folder must
        belong to the account called `student`, or to root or this service's account (an
        instructor's `nbgrader submit --student=ID`).  A link is refused whatever the setting, since
        the service, as root, would read whatever it points to (the master notebook, say)."""
        try:
            fd = os.open(self.inbound / name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                return Unreadable("not collected: the entry in inbound/ is a symbolic link or a file, not a "
                                  "folder; the service never follows one (submit with nbgrader submit)")
            if err.errno == errno.ENOENT:
                raise
            return Unreadable(f"not collected: cannot open the folder ({err.strerror})")
        why = self.owner_problem(os.fstat(fd).st_uid, student)
        if why:
            os.close(fd)
            return Unreadable(why)
        return fd

    def owner_problem(self, uid: int, student: str) -> str | None:
        """Why a folder owned by `uid` may not be collected in `student`'s name (c.Serve.check_owner)."""
        if not self.policy.check_owner or uid in (0, os.geteuid()):
            return None
        try:
            owner = repr(printable(pwd.getpwuid(uid).pw_name))
        except KeyError:
            owner = f"uid {uid}, which has no name on this machine"
        try:
            if pwd.getpwnam(student).pw_uid == uid:
                return None
            whose = f"in the name of {student!r}"
        except KeyError:
            whose = f"in the name of {student!r}, which is no account on this machine"
        return (f"not collected: the folder was made by account {owner} {whose} (c.Serve.check_owner); "
                "a student submits from their own account, an administrator as root with --student; "
                "where all students' servers share one account, set c.Serve.check_owner = False")

    def inbound_file(self, name: str, student: str, filename: str, limit: int) -> bytes | Unreadable:
        """The file `filename` of inbound/`name`, read through the checked, open folder (`open_folder`)."""
        try:
            fd = self.open_folder(name, student)
        except FileNotFoundError:
            return Unreadable(f"the submission {name} is gone from inbound/")
        if isinstance(fd, Unreadable):
            return fd
        try:
            return read_bytes(Path(filename), limit, dir_fd=fd)
        finally:
            os.close(fd)

    def collect(self, name: str, student: str, assignment: str, timestamp: str) -> None:
        """`nbgrader collect --update` for one folder: copy it to submitted/ if it is newer than what is
        there, under nbgrader's ignore, include and size rules (`copy`).  Copied beside, then
        renamed, so a kill never leaves half a submission under the final name."""
        dest = self.course.submitted_dir(student, assignment)
        if dest.is_dir():
            existing = self.course.coursedir.get_existing_timestamp(str(dest))
            if existing is not None and parse_utc(timestamp) <= existing:
                return
        dest.parent.mkdir(parents=True, exist_ok=True)
        fresh, old = dest.with_name(f".{dest.name}.collecting"), dest.with_name(f".{dest.name}.replaced")
        for leftover in (fresh, old):
            shutil.rmtree(leftover, ignore_errors=True)
        self.copy(name, student, fresh)
        if dest.exists():
            dest.rename(old)
        fresh.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        self.give(dest)

    def copy(self, name: str, student: str, dest: Path) -> None:
        """nbgrader's Exchange.do_copy of inbound/`name` to `dest` (its folder size limit, its ignore,
        include and file size rules), except that it walks the folder through open descriptors
        (`open_folder`, os.fwalk) and copies a symbolic link as a link, never following one:
        do_copy's copytree follows links and paths, and the service, as root, would copy whatever a
        student's link points to, or a folder swapped for a link mid-copy, as their submission.  A
        notebook that is a link is then graded zero with read.read_bytes' reason."""
        fd = self.open_folder(name, student)
        if isinstance(fd, Unreadable):
            raise CourseError(fd.reason)
        cd = self.course.coursedir
        ignore = ignore_patterns(exclude=cd.ignore, include=cd.include, max_file_size=cd.max_file_size,
                                 log=self.exchange.log)
        budget = Budget(1000 * cd.max_dir_size)
        try:
            for folder, dirs, files, dir_fd in os.fwalk(".", dir_fd=fd):
                target = dest / folder
                target.mkdir(parents=True)
                # nbgrader's rules look at names and sizes by path: through /proc, the open folder's.
                skip = set(ignore(f"/proc/self/fd/{dir_fd}", dirs + files))
                for entry in [*dirs, *files]:
                    info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                    if entry in skip or stat.S_ISDIR(info.st_mode):
                        continue
                    if stat.S_ISLNK(info.st_mode):
                        os.symlink(os.readlink(entry, dir_fd=dir_fd), target / entry)
                    elif stat.S_ISREG(info.st_mode):
                        copy_file(entry, dir_fd, target / entry, budget)
                dirs[:] = [d for d in dirs if d not in skip
                           and stat.S_ISDIR(os.stat(d, dir_fd=dir_fd, follow_symlinks=False).st_mode)]
        finally:
            os.close(fd)

    def give(self, path: Path) -> None:
        """Make what the service wrote belong to the course folder's owner (the grader account), as if
        that account had run nbgrader: the service runs as root for its sandbox, and nbgrader's own
        collect, autograde and release_feedback, run by the grader later, refuse folders they do not
        own.  `path` and all in it; and the folders above it, up to the course folder, that the
        service made (owned by root), e.g. autograded/<student>/ for a student's first grade."""
        if os.geteuid() != 0:
            return
        owner = self.course.root.stat()
        inside = [Path(folder) / name for folder, dirs, files in os.walk(path) for name in dirs + files]
        above = [p for p in path.parents if self.course.root in p.parents and p.lstat().st_uid == 0]
        for item in [path, *inside, *above]:
            os.chown(item, owner.st_uid, owner.st_gid, follow_symlinks=False)

    def is_latest(self, row: Row) -> bool:
        """Whether submitted/ holds this submission (the student's latest): only then does it go into
        the gradebook."""
        existing = self.course.coursedir.get_existing_timestamp(
            str(self.course.submitted_dir(row.student, row.assignment)))
        return existing is not None and existing == parse_utc(row.timestamp)

    # --- dispatch -----------------------------------------------------------------------------------
    def busy(self, assignment: str, student: str) -> int:
        return len({j.row.name for j in self.in_flight.values()
                    if j.row.assignment == assignment and j.row.student == student and j.phase == "early"})

    def dispatch(self) -> None:
        running = {j.row.name for j in self.in_flight.values()}
        for row in self.journal.waiting():
            if row.name in running:
                continue
            plans = self.plans_of(row.assignment)
            if isinstance(plans, str):
                self.journal.mark(row.name, "failed", plans)
                self.log(f"{row.name}: {plans}")
                continue
            phase = "final" if self.past_due(row.assignment) else "early"
            limit = self.policy.limit_of(row.assignment)
            if phase == "early" and limit:
                graded = self.journal.graded_since(row.assignment, row.student, time.time() - HOUR)
                if len(graded) + self.busy(row.assignment, row.student) >= limit:
                    self.hold(row, plans, graded, limit)
                    continue
            self.start(row, plans, phase)

    def start(self, row: Row, plans: dict[str, extract.AssignmentPlan], phase: str) -> None:
        limit = self.course.settings.max_notebook_bytes
        for notebook, plan in plans.items():
            data = self.inbound_file(row.name, row.student, f"{notebook}.ipynb", limit)
            self.submit(Job(row, notebook, phase, plan, data))

    def submit(self, job: Job) -> None:
        submission = Submission(job.row.student, job.row.assignment, job.notebook,
                                self.course.submitted_dir(job.row.student, job.row.assignment) / f"{job.notebook}.ipynb")
        future = self.pool.submit(pipeline.grade_submission, job.plan, submission, job.data)
        self.in_flight[future] = job

    def hold(self, row: Row, plans: dict[str, extract.AssignmentPlan], graded: list[float], limit: int) -> None:
        next_at = (graded[0] if graded else time.time()) + HOUR
        when = datetime.fromtimestamp(next_at, timezone.utc).strftime("%H:%M UTC")
        due = self.due(row.assignment)
        note = (f"You have had {limit} submission(s) graded in the last hour, the most this assignment "
                f"grades per hour before the due date, so this one was not graded now. It is kept: if it is "
                f"still your last submission at the due date"
                f"{' (' + due.strftime('%Y-%m-%d %H:%M UTC') + ')' if due else ''}, it is graded then. "
                f"A submission you make after {when} will be graded at once.")
        self.release([(row, notebook, "held", render(PageData(row.student, row.assignment, notebook, row.timestamp,
                                                               time.time(), [], [], held=note)))
                      for notebook in plans])
        self.journal.mark(row.name, "held", note)
        self.log(f"{row.name}: held (over {limit} an hour; next at {when})")

    # --- harvest ------------------------------------------------------------------------------------
    def harvest(self) -> None:
        done = [f for f in self.in_flight if f.done()]
        if not done:
            return
        jobs = [(self.in_flight.pop(f), f) for f in done]
        graded: list[tuple[Job, GradedSubmission]] = []
        for job, future in jobs:
            error = future.exception()
            if isinstance(error, WorkerDied) and job.tries < 2:
                job.tries += 1
                self.submit(job)
            elif error is not None:
                self.journal.mark(job.row.name, "failed", f"{type(error).__name__}: {error}")
                self.log(f"{job.row.name}: failed: {type(error).__name__}: {error}")
                self.finished(job)
            else:
                graded.append((job, future.result()))
        to_record = [(job, result) for job, result in graded if self.is_latest(job.row)]
        outcomes = self.writer.record_many([(result, job.plan) for job, result in to_record])
        failed = {id(job): outcome for (job, _), outcome in zip(to_record, outcomes) if isinstance(outcome, Exception)}
        for job in {(j.row.student, j.row.assignment): j for j, _ in to_record if id(j) not in failed}.values():
            self.give(self.course.autograded_dir(job.row.student, job.row.assignment))
        pages = []
        for job, result in graded:
            if id(job) in failed:
                error = failed[id(job)]
                self.journal.mark(job.row.name, "failed", f"gradebook: {type(error).__name__}: {error}")
                self.log(f"{job.row.name}: not recorded: {error}")
            else:
                pages.append((job.row, job.notebook, job.phase, self.page(job, result)))
                score, max_score = self.sums.get((job.row.name, job.phase), (0.0, 0.0))
                self.sums[job.row.name, job.phase] = (score + result.score, max_score + result.max_score)
        self.release(pages, self.all_notebooks_done([job for job, _ in jobs]))
        for job, result in graded:
            if id(job) not in failed:
                self.log(f"{job.row.name}: {job.phase} feedback released ({result.score:g}/{result.max_score:g})")
            self.finished(job)

    def all_notebooks_done(self, jobs: list[Job]) -> list[tuple[str, float, float]]:
        """(submission, score, max score) of each submission among `jobs` whose every notebook is
        graded in the job's phase: only then is it journalled graded, so a kill between two notebooks
        leaves it waiting and a restart grades the rest.  Its score adds up its notebooks'."""
        pending = {(j.row.name, j.phase) for j in self.in_flight.values()}
        done = []
        for key in dict.fromkeys((job.row.name, job.phase) for job in jobs):
            if key not in pending and key in self.sums:
                done.append((key[0], *self.sums.pop(key)))
        return done

    def finished(self, job: Job) -> None:
        final = self.finals.get(job.row.assignment)
        if final and job.phase == "final" and not any(j.row.name == job.row.name and j.phase == "final"
                                                      for j in self.in_flight.values()):
            final.names.discard(job.row.name)

    def page(self, job: Job, result: GradedSubmission) -> bytes:
        """The student's page for one graded notebook: what `shown_tests` lets them see."""
        row, plan = job.row, job.plan
        final = job.phase == "final"
        hidden = hidden_tests({c.grade_id: c.source for c in plan.tests if c.grade_id})
        tests = shown_tests(result.scores, result.max_scores, result.messages, hidden,
                            show_hidden=final or row.assignment in self.policy.show_hidden)
        nb = read.parse_notebook(job.data) if isinstance(job.data, bytes) else job.data
        answers = [] if isinstance(nb, Unreadable) else [
            (gid, c.source) for c in nb.cells if (gid := extract.grade_id_of(c)) in set(plan.graded.values())]
        due = self.due(row.assignment)
        notes = () if not result.unanswered else (f"Left as released: {', '.join(result.unanswered)}.",)
        if isinstance(job.data, Unreadable):
            notes = (job.data.reason,)
        return render(PageData(row.student, row.assignment, job.notebook, row.timestamp, time.time(), tests, answers,
                               final=final, due=due.strftime("%Y-%m-%d %H:%M UTC") if due else None, notes=notes))

    # --- release ------------------------------------------------------------------------------------
    def target(self, row: Row, notebook: str) -> str:
        secret = self.inbound_file(row.name, row.student, "submission_secret.txt", SECRET_BYTES)
        if isinstance(secret, Unreadable):
            raise CourseError(f"{row.name}: {secret.reason}")
        return notebook_hash(secret=secret.decode("utf-8", "replace"), notebook_id=notebook) + ".html"

    def release(self, pages: list[tuple[Row, str, str, bytes]],
                graded: Sequence[tuple[str, float, float]] = ()) -> None:
        """Store the pages (row, notebook, phase, html) unless one is stored for that phase, put the
        stored ones in the exchange, then journal them released and the submissions graded."""
        targets, gone = [], set()
        for row, notebook, phase, html in pages:
            try:
                targets.append((row.name, notebook, phase, self.target(row, notebook), html))
            except CourseError as error:  # its folder left the exchange: no page can be named for it
                self.journal.mark(row.name, "failed", str(error))
                gone.add(row.name)
        stored = self.journal.store_pages(targets)
        for page in stored:
            self.put(page)
        self.journal.released(stored, time.time(), [g for g in graded if g[0] not in gone])

    def put(self, page: journal_mod.Page) -> None:
        """Write the page where nbgrader's release_feedback would: a temporary name, then a rename,
        so a student never fetches half a page.  An early or held page that was still on its way
        when the submission's final page went out is not put over it."""
        if page.phase != "final" and page.notebook in self.journal.released_notebooks(page.name, "final"):
            return
        if not self.outbound.is_dir():
            self.outbound.mkdir(parents=True, exist_ok=True)
            self.outbound.chmod(FEEDBACK_DIR_MODE)
            self.give(self.outbound)
        tmp = self.outbound / f".{page.target}.{os.getpid()}.tmp"
        tmp.write_bytes(page.html)
        tmp.chmod(FEEDBACK_FILE_MODE)
        self.give(tmp)
        os.replace(tmp, self.outbound / page.target)

    # --- the due date -------------------------------------------------------------------------------
    def check_due(self) -> None:
        self.due("")  # refreshes the due dates at most once a second
        for assignment, due in list(self._due.items()):
            if due is None or not self.policy.serves(assignment) or not self.past_due(assignment):
                continue
            key = due.isoformat()
            running = self.finals.get(assignment)
            if running and running.duedate == key:
                if not running.names:
                    self.journal.finish_final(assignment, key)
                    del self.finals[assignment]
                    self.log(f"{assignment}: final feedback released for every last submission")
            elif not self.journal.final_done(assignment, key):
                self.start_final(assignment, key)

    def start_final(self, assignment: str, key: str) -> None:
        plans = self.plans_of(assignment)
        final = self.finals[assignment] = Final(key)
        if isinstance(plans, str):
            return
        latest: dict[str, Row] = {}
        for row in self.journal.settled(assignment):
            latest[row.student] = row
        rows = {r.name: r for r in latest.values()} | {r.name: r for r in self.journal.held(assignment)}
        for name, row in rows.items():
            if set(plans) <= self.journal.released_notebooks(name, "final"):
                continue
            final.names.add(name)
            self.start(row, plans, "final")
        self.log(f"{assignment}: due date passed: grading {len(final.names)} last submission(s) again")

    def warm_up(self) -> None:
        """Grade each assignment's release notebook once on every worker, so that the first students
        do not wait while a worker builds what it keeps per assignment (the trusted namespace, the
        release files in its sandbox): measured as latencies of up to 10 s in the first seconds of a
        burst (make bench-submit).  The pool hands each idle worker one task before any a second."""
        futures = set()
        for assignment, plans in self.plans.items():
            if isinstance(plans, str):
                continue
            for notebook, plan in plans.items():
                data = read_bytes(self.course.release_dir(assignment) / f"{notebook}.ipynb")
                submission = Submission("(warm-up)", assignment, notebook, self.course.release_dir(assignment))
                futures |= {self.pool.submit(pipeline.grade_submission, plan, submission, data)
                            for _ in range(self.workers)}
        while futures and not self.stop.is_set():
            futures -= self.pool.wait_first(futures)

    # --- the loop -----------------------------------------------------------------------------------
    def watch(self) -> None:
        """Wake the loop on every change in the inbound folder (a thread)."""
        import watchfiles

        while not self.stop.is_set():
            if not self.inbound.is_dir():
                self.stop.wait(self.policy.rescan_seconds)
                continue
            try:
                for _ in watchfiles.watch(self.inbound, stop_event=self.stop, debounce=200, step=20,
                                          force_polling=self.policy.force_polling or None,
                                          poll_delay_ms=int(self.policy.poll_seconds * 1000),
                                          rust_timeout=1000, yield_on_timeout=True, raise_interrupt=False):
                    self.wake.set()
            except Exception as error:  # the folder went away, a watch limit: scan, then watch again
                self.log(f"watching {self.inbound} stopped ({type(error).__name__}: {error}); watching again")
                self.wake.set()
                self.stop.wait(1.0)

    def run(self) -> None:
        self.log(f"serving {self.course.course_id} from {self.inbound} (journal {self.journal.path}, "
                 f"{'polling' if self.policy.force_polling else 'inotify'})")
        unreleased = list(self.journal.unreleased())  # stored before a kill, not yet in the exchange
        for page in unreleased:
            self.put(page)
        self.journal.released(unreleased, time.time())
        for assignment in self.gradebook_assignments():  # plan now, not when the first submission waits
            if self.policy.serves(assignment):
                self.plans_of(assignment)
        deadline = time.monotonic() + pool_mod.START_SECONDS
        while self.pool.ready() < self.workers and time.monotonic() < deadline and not self.stop.is_set():
            self.pool.step(0.1)  # each worker's sandbox zygote starts (seconds on a loaded machine)
        self.warm_up()
        self.log(f"ready: {len(self.plans)} assignment(s) planned, {self.pool.ready()} worker(s)")
        watcher = threading.Thread(target=self.watch, name="coursekit-watch", daemon=True)
        watcher.start()
        last_scan = 0.0
        try:
            while not self.stop.is_set():
                if self.wake.is_set() or time.monotonic() - last_scan > self.policy.rescan_seconds:
                    self.wake.clear()
                    last_scan = time.monotonic()
                    self.intake()
                self.check_due()
                self.dispatch()
                if self.in_flight:
                    self.pool.step(0.05)
                    self.harvest()
                else:
                    self.wake.wait(0.5)
        finally:
            self.stop.set()
            self.pool.close()
            self.writer.close()
            self.journal.close()


def serve(*, course_dir: Path | str = ".", insecure: bool = False, log: TextIO = sys.stderr) -> None:
    """Grade and release feedback for every submission of the course at `course_dir` until SIGTERM
    or SIGINT.  Raises CourseError when the course cannot be served (and says why)."""
    if not insecure:
        pipeline._check_isolation()
    service = Service(Path(course_dir), insecure=insecure, log=log)

    def stop(*_: object) -> None:
        service.stop.set()
        service.wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    service.run()
