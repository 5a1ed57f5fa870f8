"""The grading pipeline, in one place.

Per assignment (once, in the grader's process):
    extract.plan_assignment -> score.record_calls       master + gradebook -> tests, call plan
Per submission:
    read      read.read_bytes / read.parse_notebook    (grader: bytes; worker: notebook)
    extract   extract.student_run                      (worker: the top-to-bottom steps)
    sandbox   sandbox.Sandbox.run_steps                (worker; student code runs only here)
    score     score.replay, score.autograded_notebook  (worker, trusted)
    gradebook gradebook.GradebookWriter.record         (grader)
    report    report.Reporter                          (grader)

The worker part (`grade_submission`) needs only the process's `Worker`, the plan and the
notebook's bytes, so the same task runs in a local pool of pre-warmed processes (default: each
process's Worker is the state its pool initializer built, `start_pool_worker`) or on a Dask cluster
(``--scheduler tcp://HOST:PORT``: each Dask worker's Worker is held by a plugin, `cluster.WorkerState`).
The grader process owns the course folder and the gradebook.  Every time limit comes from the
course's settings (`config.Settings.run_limits`, `worker_seconds`), computed there once.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.util
import os
import resource
import shutil
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from . import extract, read, sandbox, score
from .config import DEFAULT_PRELOAD, MAX_RUNS, Settings
from .deadline import WorkTimeout, time_limit
from .gradebook import GradebookWriter, claim
from .names import Names, python_source
from .pool import HELD_TASKS, LocalPool, WorkerDied
from .preload import installed_imports
from .report import Reporter
from .score import GradedSubmission

log = logging.getLogger(__name__)

# The grader commits graded submissions to the gradebook in batches (one transaction each, see
# gradebook.GradebookWriter): up to WRITE_BATCH at a time, at least every WRITE_SECONDS.
WRITE_BATCH = 100
WRITE_SECONDS = 1.0
CACHED_CELL_CHARS = 4000  # longer cells are transformed and analysed every time (Worker)
# The worker's own work with one submission's text (reading the notebook, IPython's input
# transformation and the analysis of every cell): an honest notebook takes milliseconds.
TEXT_SECONDS = 10.0


# ----------------------------------------------------------------------------- worker side


class Worker:
    """What one grading process keeps between submissions: its pre-warmed sandbox, each plan's
    release files on local disk and trusted namespace, and its caches.  A local pool's
    initializer builds it (`start_pool_worker`) and it is closed when the process ends; on Dask
    the worker's plugin builds it for the first task (`cluster.WorkerState`).  Everything it writes lives in one temporary folder it deletes."""

    def __init__(self, preload: tuple[str, ...] = DEFAULT_PRELOAD, insecure: bool = False) -> None:
        self.folder = sandbox.scratch_folder("coursekit-worker-")
        self.box = sandbox.Sandbox(preload=preload, insecure=insecure)
        self.transformer = TransformerManager()
        # Most of a class's cells are the release's, unchanged: each is transformed and analysed
        # once per distinct text (a Names is immutable; what raises is not kept).  Cells longer
        # than CACHED_CELL_CHARS are not kept, so that the caches stay small (a few MB) whatever
        # a class submits.
        self._python_of = functools.lru_cache(maxsize=4096)(self._python)
        self._names_of = functools.lru_cache(maxsize=2048)(extract.cell_names)
        self.compiled = functools.lru_cache(maxsize=512)(score.compile_cell)
        self.replays = score.ReplayCache()
        self._release: dict[str, Path] = {}
        self._namespaces: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.transforming = ""  # the cell source being transformed (named when that takes too long)

    def _python(self, source: str) -> str:
        return python_source(source, self.transformer)

    def python(self, source: str) -> str:
        """The Python a kernel runs for a cell (names.python_source), cached for short cells."""
        self.transforming = source
        return (self._python_of if len(source) <= CACHED_CELL_CHARS else self._python)(source)

    def names(self, code: str) -> Names:
        """extract.cell_names, cached for short cells."""
        return (self._names_of if len(code) <= CACHED_CELL_CHARS else extract.cell_names)(code)

    def start(self) -> Worker:
        """Start the zygote now rather than on the first submission; raises
        sandbox.IsolationMissing on a machine that cannot isolate submissions, unless the
        worker is insecure (--insecure)."""
        self.box.start()
        return self

    def release(self, plan: extract.AssignmentPlan) -> Path:
        """The plan's release files (the sandbox's working folder), written once."""
        with self._lock:
            if plan.key not in self._release:
                folder = self.folder / f"release-{plan.key}"
                for name, data in plan.release_files.items():
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_bytes(data)
                folder.mkdir(exist_ok=True)
                self._release[plan.key] = folder
            return self._release[plan.key]

    def namespace(self, plan: extract.AssignmentPlan) -> dict:
        """A fresh copy of the plan's trusted namespace (the needed locked cells, run once)."""
        with self._lock:
            if plan.key not in self._namespaces:
                folder = self.trusted_folder(plan)
                folder.mkdir()
                try:
                    self._namespaces[plan.key] = score.trusted_namespace(plan, folder, self.python)
                except BaseException:
                    if str(folder) in sys.path:
                        sys.path.remove(str(folder))
                    raise
            return dict(self._namespaces[plan.key])

    def trusted_folder(self, plan: extract.AssignmentPlan) -> Path:
        """Where the plan's trusted cells run: the assignment's files (score.trusted_namespace)."""
        return self.folder / f"trusted-{plan.key}"

    def close(self) -> None:
        self.box.close()
        for key in self._namespaces:
            folder = str(self.folder / f"trusted-{key}")
            if folder in sys.path:
                sys.path.remove(folder)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def plan_notebook(course: read.Course, assignment: str, notebook: str, worker: Worker) -> extract.AssignmentPlan:
    """The notebook's plan, with the calls its tests make recorded on the master's solutions, and
    the installed libraries its master imports added to the sandbox's preload.

    A locked cell that fails in the grader (it reads a data file, or a name only a kernel run
    has) does not stop planning: the tests that need it are graded in the sandbox, in place."""
    plan = extract.plan_assignment(course, assignment, notebook)
    while True:
        try:
            namespace = worker.namespace(plan)
        except extract.LockedCellFails as failed:
            plan = plan.without_trusted_cell(failed.index, str(failed))
            continue
        score.record_calls(plan, namespace, worker.python, worker.trusted_folder(plan))
        preload = tuple(dict.fromkeys(plan.settings.sandbox_preload + installed_imports(plan, worker.python)))
        plan.settings = replace(plan.settings, sandbox_preload=preload)
        return plan


def check_master(course: read.Course, plan: extract.AssignmentPlan, worker: Worker) -> None:
    """Grade the master notebook itself, solutions in place, as a submission; add a warning to
    the plan for each test cell that does not earn its points.  Such a test is broken for
    everyone (nbgrader grades it 0 for every student who answers like the master) and the
    instructor should know before the term, not from the grades."""
    path = course.source_dir(plan.assignment) / f"{plan.notebook}.ipynb"
    nb = read.parse_notebook(path.read_bytes(), path.name)
    if isinstance(nb, read.Unreadable):
        return
    try:
        run = extract.student_run(nb, plan, worker.python, worker.names)
        result = _run_steps(worker, plan, run)
    except (sandbox.IsolationMissing, sandbox.SandboxError, extract.Refused) as error:
        plan.warnings.append(f"the master notebook could not be checked ({error})")
        return
    for outcome in score.replay(plan, result, run.tests, worker.namespace(plan), worker.python):
        if outcome.score < outcome.max_score:
            plan.warnings.append(
                f"master test cell {outcome.grade_id} fails with the master's own solution "
                f"({outcome.message or 'no points'}); it is graded as a kernel runs it, as nbgrader does "
                "(0 for everyone if the test itself is broken): fix the test and run "
                "`nbgrader generate_assignment` again")


def start_pool_worker(preload: tuple[str, ...] = DEFAULT_PRELOAD, insecure: bool = False) -> Worker:
    """A local pool process's state (`pool.LocalPool`'s initializer): its Worker, its zygote
    preloading the course's c.CourseKit.sandbox_preload, closed when the process exits (through
    multiprocessing, which runs its finalizers), and a memory limit on the process itself."""
    worker = Worker(preload, insecure).start()
    multiprocessing.util.Finalize(worker, worker.close, exitpriority=10)
    _limit_worker()
    return worker


WORKER_MEMORY_BYTES = 6 << 30  # address space of one grading process (grading, one maps about 0.4 GiB)


def _limit_worker() -> None:
    """Bound the grading process itself: a submission that makes the trusted side allocate
    without end meets MemoryError (and scores 0 with that reason), not the OOM killer.
    Only the soft limit: the sandbox zygote, should it restart, lowers its children's limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > WORKER_MEMORY_BYTES:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, hard))


def grade_submission(worker: Worker, plan: extract.AssignmentPlan, submission: read.Submission,
                     data: bytes | read.Unreadable) -> GradedSubmission:
    """read -> extract -> sandbox -> score for one submission, with this process's `worker`.

    Never raises because of what the submission holds: anything its content causes scores 0
    with the reason.  Only a failure of the grader itself (the sandbox machinery) raises, and
    leaves the submission ungraded for a rerun.  An insecure worker (--insecure: a machine
    without full isolation grades anyway) starts every reason by saying so."""
    warning = [worker.box.insecure_note] if worker.box.insecure_note else []
    nb: nbformat.NotebookNode | read.Unreadable | None = None
    try:
        # Everything done here with the submission's text is bounded in time (TEXT_SECONDS) and,
        # in a local worker, in memory (_limit_worker); the sandbox and replay have their own limits.
        with time_limit(TEXT_SECONDS, "the submission's text"):
            worker.transforming = ""
            nb = read.parse_notebook(data, f"{submission.notebook}.ipynb") if isinstance(data, bytes) else data
            if isinstance(nb, read.Unreadable):
                return score.zero(plan, submission, warning + [nb.reason])
            run = extract.student_run(nb, plan, worker.python, worker.names)
        result = _run_steps(worker, plan, run)
        rerun = ({} if result.failure is sandbox.Failure.GRADER
                 else score.tests_needing_the_sandbox(plan, run.tests, result))
        if rerun:  # values replay cannot hand to the test: run those tests in place, as a kernel would
            plan = _with_sandboxed(plan, rerun)
            with time_limit(TEXT_SECONDS, "the submission's text"):
                run = extract.student_run(nb, plan, worker.python, worker.names)
            result = _run_steps(worker, plan, run)
        if result.failure is sandbox.Failure.GRADER:
            raise sandbox.SandboxError(result.reason)
        outcomes = score.replay(plan, result, run.tests, worker.namespace(plan), worker.python, worker.compiled,
                                worker.replays, worker.trusted_folder(plan))
        graded_nb = score.autograded_notebook(nb, plan, outcomes)
        notes = warning + list(run.notes) + list(rerun.values()) + [
            e for e in result.code_errors if e.partition(":")[0] in run.relevant]
        if result.reason:
            notes.append(f"sandbox: {result.reason}")
        return score.graded(plan, submission, outcomes, graded_nb, notes)
    except sandbox.SandboxError:
        raise
    except extract.Refused as refused:
        return score.zero(plan, submission, warning + [str(refused)])
    except WorkTimeout:
        return score.zero(plan, submission, warning + [_too_slow(nb, worker.transforming)])
    except (Exception, RecursionError, MemoryError) as error:  # the content broke the grader's code
        return score.zero(plan, submission, warning + [f"coursekit could not grade this notebook's content "
                                                  f"({type(error).__name__}: {str(error)[:300]}); it scores 0"])


def _with_sandboxed(plan: extract.AssignmentPlan, tests: dict[str, str]) -> extract.AssignmentPlan:
    """A copy of the plan in which these test cells run in the sandbox (test id -> why); it keeps
    the plan's key, so the worker's caches (release files, trusted namespace) still apply."""
    copy = replace(plan, sandboxed={**plan.sandboxed, **tests})
    copy.__dict__["key"] = plan.key  # functools.cached_property's slot: the content is the same
    return copy


def _too_slow(nb: nbformat.NotebookNode | read.Unreadable | None, source: str) -> str:
    """Why a submission whose text took the worker more than TEXT_SECONDS scores 0, naming the cell."""
    cells = nb.cells if isinstance(nb, nbformat.NotebookNode) else []
    where = next((f"cell {i + 1}" for i, c in enumerate(cells) if source and c.get("source") == source), None)
    if where is None:
        return (f"reading and preparing this notebook took the grader more than {TEXT_SECONDS:g} s, which no "
                "notebook needs; it was not graded and scores 0 (was it edited outside Jupyter?)")
    lines = source.count("\n") + 1
    return (f"{where} ({lines:,} lines) took the grader more than {TEXT_SECONDS:g} s to turn into Python "
            "(IPython's input transformation of its ?, !, % lines), which no notebook needs; the notebook "
            f"was not graded and scores 0: shorten {where} (a few lines of ?, ! or % each) and resubmit")


def _run_steps(worker: Worker, plan: extract.AssignmentPlan, run: extract.StudentRun) -> sandbox.SandboxResult:
    """The submission's steps in one sandbox run.  If the run dies in a call (exit, crash,
    timeout, memory), the rest of that function's calls fail with the reason and everything
    else runs again in a fresh sandbox: one broken function costs only its own exercise.  If
    it dies in a cell, the cell is left out of the next run (and the reason says so).  At most
    MAX_RUNS runs, each with the limits `plan.settings.run_limits` gives it."""
    steps = list(run.steps)
    failed: dict[int, sandbox.CallResult] = {}  # step index -> its result, for calls left out
    left_out: set[int] = set()
    reasons: list[str] = []
    first: sandbox.SandboxResult | None = None
    last_calls: dict[int, sandbox.CallResult] = {}
    last_tests: dict[int, sandbox.TestResult] = {}
    failures: list[sandbox.Failure | None] = []
    for attempt in range(MAX_RUNS):
        todo = [i for i in range(len(steps)) if i not in left_out]
        result = worker.box.run_steps([steps[i] for i in todo], workdir_files=worker.release(plan),
                                      limits=plan.settings.run_limits(len(todo)))
        first = first or result
        last_calls = dict(zip([i for i in todo if isinstance(steps[i], sandbox.Call)], result.calls))
        last_tests = dict(zip([i for i in todo if isinstance(steps[i], sandbox.Test)], result.tests))
        if result.reason:
            reasons.append(result.reason)
        failures.append(result.failure)
        # A run the submission stopped goes again without what stopped it; one the grader's
        # machinery failed, or whose records were forged, does not, and neither does a voided run
        # (stopped by no step in particular: none is blamed or left out).
        stopped = (result.completed < len(todo) and attempt < MAX_RUNS - 1 and not result.void
                   and result.failure not in (sandbox.Failure.GRADER, sandbox.Failure.FORGED))
        if not stopped:
            break
        where = todo[result.completed]
        stopper = steps[where]
        if isinstance(stopper, sandbox.Test):
            left_out.add(where)  # the test cell killed its run: it fails, the rest runs again
            reasons.append(f"the test cell {stopper.label} stopped the sandbox; it scored 0")
        elif isinstance(stopper, sandbox.Call):
            broken = stopper.function
            for i in todo[result.completed:]:
                step = steps[i]
                if isinstance(step, sandbox.Call) and step.function == broken:
                    failed[i] = sandbox.CallResult(broken, "error", error=f"SandboxStopped: {result.reason}")
                    left_out.add(i)
        else:
            left_out.add(where)
            reasons.append(f"{stopper.label} stopped the sandbox and was left out of a second run")
    calls = [failed.get(i) or last_calls.get(i) or sandbox.CallResult(step.function, "not_run")
             for i, step in enumerate(steps) if isinstance(step, sandbox.Call)]
    tests = [last_tests.get(i) or sandbox.TestResult(step.label, "not_run")
             for i, step in enumerate(steps) if isinstance(step, sandbox.Test)]
    # The grader's failure in any run leaves the submission ungraded; else the first run's says who stopped it.
    failure = sandbox.Failure.GRADER if sandbox.Failure.GRADER in failures else next(filter(None, failures), None)
    return sandbox.SandboxResult(calls, "; ".join(dict.fromkeys(reasons)) or None, first.output if first else "",
                                 result.code_errors, tests, failure=failure)


# ----------------------------------------------------------------------------- grader side


@dataclass
class _Backend:
    submit: Callable[..., Any]  # (plan, submission, data) -> future
    wait_first: Callable[[set], set]  # futures -> the done ones (at least one)
    width: int  # how many tasks to keep in flight
    close: Callable[[], None]


def _local_backend(workers: int, preload: tuple[str, ...], insecure: bool, settings: Settings,
                   note: Callable[[str], None]) -> _Backend:
    # A worker that holds one submission longer than every sandbox run it may make is stuck: the
    # pool kills it and the submission gets its second try.
    pool = LocalPool(workers, start_pool_worker, (preload, insecure), task_seconds=settings.worker_seconds, note=note)
    # In flight: what every worker holds, and one more each ready to give out.
    return _Backend(submit=lambda *args: pool.submit(grade_submission, *args),
                    wait_first=pool.wait_first, width=(HELD_TASKS + 1) * workers, close=pool.close)


def _started_worker(preload: tuple[str, ...], insecure: bool) -> Worker:
    return Worker(preload, insecure).start()


def _grade_on_dask(plan: extract.AssignmentPlan, submission: read.Submission,
                   data: bytes | read.Unreadable) -> GradedSubmission:
    """A task on a Dask worker: grade_submission with the Worker its plugin holds."""
    from .cluster import state

    return grade_submission(state(), plan, submission, data)


def _dask_backend(address: str, preload: tuple[str, ...], insecure: bool) -> _Backend:
    from distributed import Client, wait

    from .cluster import PLUGIN_NAME, WorkerState

    client = Client(address)
    # Each Dask worker builds its Worker on its first task (it checks its own isolation then)
    # and closes it when it ends; a later run's plugin replaces this one.
    client.register_plugin(WorkerState(functools.partial(_started_worker, preload, insecure)), name=PLUGIN_NAME)
    scattered: dict[int, Any] = {}

    def submit(plan: extract.AssignmentPlan, *args: Any) -> Any:
        if id(plan) not in scattered:  # send the plan to every worker once
            scattered[id(plan)] = client.scatter(plan, broadcast=True, hash=False)
        return client.submit(_grade_on_dask, scattered[id(plan)], *args, pure=False)

    width = 2 * max(sum(client.nthreads().values()), 1)
    return _Backend(submit=submit, wait_first=lambda fs: set(wait(fs, return_when="FIRST_COMPLETED").done),
                    width=width, close=client.close)


def default_workers() -> int:
    """Local worker processes when none is asked for: one per core, and one more.

    A worker is busy on one core at a time, but between its steps (its sandbox forking and
    replying, the grader handing out work) a core can sit idle; one worker more keeps both
    cores of a 2-core machine busy.  Measured with `coursekit autograde --workers N` on generated
    classes of 200 and 1,000 (the rate of the 800 between), quiet machine: 2 workers 85-95/s
    (3 runs), 3 workers 97-109/s (6 runs), 4 workers 99-113/s (4 runs, within the noise of 3)."""
    return (os.cpu_count() or 1) + 1


def _check_isolation() -> None:
    """Start a bare zygote to see whether this machine isolates submissions; CourseError if not
    (like an unusable course, the whole run stops and says why)."""
    try:
        with sandbox.Sandbox(preload=()) as probe:
            probe.start()
    except sandbox.IsolationMissing as error:
        raise read.CourseError(str(error)) from None


@dataclass(frozen=True)
class Summary:
    graded: int
    skipped: int
    failed: int
    results: list[GradedSubmission]  # without the notebooks' text (in autograded/): memory stays flat


def autograde(*, assignment: str, course_dir: Path | str = ".", students: Iterable[str] | None = None,
              workers: int | None = None, scheduler: str | None = None, wall_seconds: float | None = None,
              force: bool = False, json_lines: bool = False, insecure: bool = False,
              out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Summary:
    """Grade every submission of `assignment` (or those of `students`) into the gradebook.

    On a machine where the sandbox cannot isolate submissions fully (not root, no
    CAP_SYS_ADMIN, no namespaces, no seccomp), grading is refused with a CourseError that
    names what is missing, unless `insecure` (--insecure) is set: then every reason says so.
    `workers` and `wall_seconds` override c.CourseKit.workers and c.CourseKit.wall_seconds
    (0 workers: one per core, and one more)."""
    overrides = {name: value for name, value in (("workers", workers), ("wall_seconds", wall_seconds))
                 if value is not None}
    course = read.load_course(Path(course_dir), overrides)  # checks them as it checks the file's
    if not scheduler and not insecure:
        _check_isolation()  # refuse at once, not in every worker (Dask workers check their own)
    with Worker(course.settings.sandbox_preload, insecure) as planner:  # runs the master's tests once, in this process
        plans = {name: plan_notebook(course, assignment, name, planner)
                 for name in extract.notebooks_of(course, assignment)}
        for plan in plans.values():
            check_master(course, plan, planner)
    for name, plan in plans.items():
        log.info("%s.ipynb: %d graded function(s), %d test cell(s), %d of them run in the sandbox",
                 name, len(plan.graded), sum(c.kind == "test" for c in plan.cells), len(plan.sandboxed))
        for warning in plan.warnings:
            log.warning("%s: %s", name, warning)
    submissions = read.find_submissions(course, assignment, list(plans), list(students) if students else None)
    local_workers = course.settings.workers or default_workers()
    preload = tuple(dict.fromkeys(name for plan in plans.values() for name in plan.settings.sandbox_preload))
    log.info("%s: %d submission(s) to grade, %s", assignment, len(submissions),
             f"on the Dask cluster at {scheduler}" if scheduler else f"{local_workers} local worker processes")
    reporter = Reporter(len(submissions), json_lines, out, err)
    backend = (_dask_backend(scheduler, preload, insecure) if scheduler
               else _local_backend(local_workers, preload, insecure, course.settings, log.warning))
    writer = GradebookWriter(course)
    try:
        results = _Batch(course, plans, submissions, backend, writer, reporter, force=force).run()
    finally:
        backend.close()
        writer.close()
        reporter.close()
    return Summary(reporter.graded, reporter.skipped, reporter.failed, results)


_Task = tuple[read.Submission, Any]  # a claimed submission and its claim (gradebook.claim)


class _Batch:
    """The grader's side of one autograde run: keep the backend busy with submissions, take what
    comes back, commit it to the gradebook in batches, report it.  Every claimed submission is
    released, graded or not, however the run ends (a re-run grades what was not committed)."""

    def __init__(self, course: read.Course, plans: dict[str, extract.AssignmentPlan],
                 submissions: list[read.Submission], backend: _Backend, writer: GradebookWriter,
                 reporter: Reporter, *, force: bool) -> None:
        self.course, self.plans, self.backend, self.writer, self.reporter = course, plans, backend, writer, reporter
        self.force = force
        self.pending = iter(submissions)
        self.in_flight: dict[Any, _Task] = {}  # future -> its task
        self.retry: list[_Task] = []  # claimed, but their worker process died
        self.retried: set[read.Submission] = set()
        self.unwritten: list[tuple[GradedSubmission, Any]] = []  # graded, not yet in the gradebook
        self.last_write = time.monotonic()
        self.results: list[GradedSubmission] = []

    def run(self) -> list[GradedSubmission]:
        try:
            while True:
                self._fill()
                if not self.in_flight:
                    break
                for future in self.backend.wait_first(set(self.in_flight)):
                    self._take(future, *self.in_flight.pop(future))
                if self._write_due():
                    self._write()
            if self.unwritten:
                self._write()
        finally:
            for _, held in list(self.in_flight.values()) + self.retry:
                held.release()
            for _, held in self.unwritten:  # killed or failed before their commit: a re-run grades them
                held.release()
        return self.results

    def _next_task(self) -> _Task | None:
        """A submission to grade, claimed: one to try again first, then the next one not graded
        yet (unless --force) and not claimed by another grader."""
        while self.retry or (sub := next(self.pending, None)) is not None:
            if self.retry:
                return self.retry.pop()
            assert sub is not None  # the loop's condition fetched it: retry was empty
            held = claim(self.course, sub)
            if held is None:
                self.reporter.skipped_one(sub, "another grader is grading it")
            elif not self.force and self.writer.is_done(sub, self.plans[sub.notebook]):
                held.release()
                self.reporter.skipped_one(sub, "already graded (use --force to grade again)")
            else:
                return sub, held
        return None

    def _fill(self) -> None:
        """Hand out submissions until the backend holds as many as it can use."""
        while len(self.in_flight) < self.backend.width and (task := self._next_task()) is not None:
            sub, held = task
            data = read.read_bytes(sub.path, self.course.settings.max_notebook_bytes)
            future = self.backend.submit(self.plans[sub.notebook], sub, data)
            self.in_flight[future] = (sub, held)

    def _take(self, future: Any, sub: read.Submission, held: Any) -> None:
        """A finished task: its graded submission waits for the next commit, or it failed."""
        try:
            self.unwritten.append((future.result(), held))
        except WorkerDied as died:
            # A worker process died (not a sandbox: those die alone), e.g. at the OOM
            # killer's hand, or was stuck. Its one submission gets one more try.
            if sub in self.retried:
                self.reporter.failed_one(sub, f"the worker process grading it died twice (the last time: {died})")
                held.release()
            else:
                self.retried.add(sub)
                self.retry.append((sub, held))
        except Exception as error:  # a grader fault: report it, leave it ungraded, go on
            self.reporter.failed_one(sub, f"{type(error).__name__}: {error}")
            held.release()

    def _write_due(self) -> bool:
        """Many submissions per transaction; at least every WRITE_SECONDS, so a killed batch
        loses little and progress is reported as it happens."""
        return bool(self.unwritten) and (len(self.unwritten) >= WRITE_BATCH or not self.in_flight
                                         or time.monotonic() - self.last_write > WRITE_SECONDS)

    def _write(self) -> None:
        """Commit the graded submissions in one transaction, then report them and let them go."""
        outcomes = self.writer.record_many([(result, self.plans[result.submission.notebook])
                                            for result, _ in self.unwritten])
        for (result, held), outcome in zip(self.unwritten, outcomes):
            if isinstance(outcome, Exception):  # a grader fault: report it, leave it ungraded, go on
                self.reporter.failed_one(result.submission, f"{type(outcome).__name__}: {outcome}")
            else:
                result = replace(result, reason=outcome.reason, notebook=b"")
                self.results.append(result)
                self.reporter.graded_one(result)
            held.release()
        self.unwritten.clear()
        self.last_write = time.monotonic()
