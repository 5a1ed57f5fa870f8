"""The grading pipeline, in one place.

Per assignment (once, in the grader's process):
    extract.plan_assignment -> score.record_calls       master + gradebook -> tests, call plan
Per submission:
    read      read.read_bytes / read.parse_notebook    (grader: bytes; worker: notebook)
    extract   extract.student_code                     (worker)
    sandbox   sandbox.Sandbox.run                      (worker; student code runs only here)
    score     score.replay, score.autograded_notebook  (worker, trusted)
    gradebook gradebook.GradebookWriter.record         (grader)
    report    report.Reporter                          (grader)

The worker part (`grade_submission`) needs only the plan and the notebook's bytes, so the same
task runs in a local pool of pre-warmed processes (default) or on a Dask cluster
(``--scheduler tcp://HOST:PORT``).  The grader process owns the course folder and the gradebook.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import nbformat
from nbgrader.utils import compute_checksum

from . import extract, read, sandbox, score
from .gradebook import GradebookWriter, GradedSubmission, claim
from .report import Reporter

MAX_REASON = 4000
# The grader commits graded submissions to the gradebook in batches (one transaction each, see
# gradebook.GradebookWriter): up to WRITE_BATCH at a time, at least every WRITE_SECONDS.
WRITE_BATCH = 100
WRITE_SECONDS = 1.0


# ----------------------------------------------------------------------------- worker side

_WARM: dict[str, Path] = {}
_WARM_LOCK = threading.Lock()


_BOX: sandbox.Sandbox | None = None


def start_sandbox(preload: tuple[str, ...] = sandbox.DEFAULT_PRELOAD,
                  insecure: bool = False) -> sandbox.Sandbox:
    """This process's sandbox: a zygote with the course's preloads (c.CourseKit.sandbox_preload)
    imported, started now rather than on the first submission (a local pool's workers call this
    as they start).  Raises sandbox.IsolationMissing on a machine that cannot isolate
    submissions, unless `insecure` (--insecure)."""
    global _BOX
    with _WARM_LOCK:
        if _BOX is None or _BOX.insecure != insecure:
            if _BOX is not None:
                _BOX.close()
            box = sandbox.Sandbox(preload=preload, insecure=insecure)
            box.start()  # now, not on the first submission; refuses a machine without isolation
            _BOX = box
        return _BOX


def _warm(plan: extract.AssignmentPlan, insecure: bool) -> tuple[sandbox.Sandbox, Path]:
    """The sandbox and this plan's release files on local disk, made once per process."""
    box = start_sandbox(plan.settings.sandbox_preload, insecure)
    with _WARM_LOCK:
        if plan.key not in _WARM:
            folder = sandbox.scratch_folder(f"coursekit-release-{plan.key}-")
            for name, data in plan.release_files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            _WARM[plan.key] = folder
    score.trusted_namespace(plan)  # import the course's test helpers before the first task
    return box, _WARM[plan.key]


def grade_submission(plan: extract.AssignmentPlan, submission: read.Submission,
                     data: bytes | read.Unreadable, limits: sandbox.Limits,
                     insecure: bool = False) -> GradedSubmission:
    """read -> extract -> sandbox -> score for one submission; never raises for bad input.
    With `insecure` (--insecure), a machine without full isolation grades anyway and every
    reason starts by saying so."""
    box, release = _warm(plan, insecure)
    warning = [box.insecure_note] if box.insecure_note else []
    nb = read.parse_notebook(data, f"{submission.notebook}.ipynb") if isinstance(data, bytes) else data
    if isinstance(nb, read.Unreadable):
        outcomes = score.failed_outcomes(plan, nb.reason)
        graded_nb = score.autograded_notebook(None, plan, outcomes)
        return _result(plan, submission, outcomes, graded_nb, warning + [nb.reason], cell_failures=False)

    code = extract.student_code(nb, plan)
    result = _run_calls(box, release, plan, list(code.parts), limits)
    outcomes = score.replay(plan, result)
    graded_nb = score.autograded_notebook(nb, plan, outcomes)
    notes = warning + list(code.notes) + [_name_part(e, code.labels) for e in result.code_errors]
    if result.reason:
        notes.append(f"sandbox: {result.reason}")
    return _result(plan, submission, outcomes, graded_nb, notes)


def _run_calls(box: sandbox.Sandbox, release: Path, plan: extract.AssignmentPlan, parts: list[str],
               limits: sandbox.Limits) -> sandbox.SandboxResult:
    """All planned calls in one sandbox run.  If the run dies in a call (exit, crash, timeout,
    memory), the rest of that function's calls fail with the reason and the other functions'
    calls run again in a fresh sandbox: one broken function costs only its own exercise."""
    calls = score.planned_calls(plan)
    results: list[sandbox.CallResult | None] = [None] * len(calls)
    reasons: list[str] = []
    first: sandbox.SandboxResult | None = None
    while None in results:
        pending = [i for i, r in enumerate(results) if r is None]
        run = box.run(parts, [calls[i] for i in pending], workdir_files=release, limits=limits)
        first = first or run
        done = [(i, r) for i, r in zip(pending, run.calls) if r.status != "not_run"]
        for i, r in done:
            results[i] = r
        if run.reason:
            reasons.append(run.reason)
        if len(done) == len(pending):
            break
        # The last call that reported is the one the run died in; without one, loading died.
        broken = {done[-1][1].function} if done else {calls[i].function for i in pending}
        for i in pending:
            if results[i] is None and calls[i].function in broken:
                results[i] = sandbox.CallResult(calls[i].function, "error",
                                                error=f"SandboxStopped: {run.reason or 'the run ended early'}")
    return sandbox.SandboxResult(list(results), "; ".join(dict.fromkeys(reasons)) or None,
                                 first.output if first else "", first.code_errors if first else [])


def _name_part(error: str, labels: tuple[str, ...]) -> str:
    """"part 2: NameError: ..." -> "cell 8: NameError: ..." (the sandbox numbers the parts)."""
    head, _, rest = error.partition(": ")
    number = head.removeprefix("part ")
    if number.isdigit() and 0 < int(number) <= len(labels):
        return f"{labels[int(number) - 1]}: {rest}"
    return error


def _result(plan: extract.AssignmentPlan, submission: read.Submission, outcomes: list[score.CellOutcome],
            graded_nb: nbformat.NotebookNode, notes: list[str], cell_failures: bool = True) -> GradedSubmission:
    failures = [f"{o.grade_id}: {o.message}" for o in outcomes
                if cell_failures and o.score < o.max_score and o.message]
    reason = "; ".join(notes + failures)
    solutions = set(plan.graded.values())
    unanswered = tuple(dict.fromkeys(
        c.metadata.nbgrader["grade_id"] for c in graded_nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in solutions
        and compute_checksum(c) == plan.checksums.get(c.metadata.nbgrader["grade_id"])))
    return GradedSubmission(
        submission=submission,
        scores={o.grade_id: o.score for o in outcomes},
        max_scores={o.grade_id: o.max_score for o in outcomes},
        messages={o.grade_id: o.message for o in outcomes},
        unanswered=unanswered,
        # Compact JSON: json's C encoder writes it; `indent` would use the pure-Python one (3x slower).
        notebook=json.dumps(graded_nb, ensure_ascii=False, separators=(",", ":")) + "\n",
        reason=reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + " ...",
    )


# ----------------------------------------------------------------------------- grader side


@dataclass
class _Backend:
    submit: Callable[..., Any]  # (plan, submission, data, limits, insecure) -> future
    wait_first: Callable[[set], set]  # futures -> the done ones (at least one)
    width: int  # how many tasks to keep in flight
    close: Callable[[], None]


def _local_backend(workers: int, preload: tuple[str, ...], insecure: bool) -> _Backend:
    # fork: workers start with everything this process imported (NumPy, nbgrader) already loaded.
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                  initializer=start_sandbox, initargs=(preload, insecure))
    return _Backend(submit=lambda *args: pool.submit(grade_submission, *args),
                    wait_first=lambda fs: cf.wait(fs, return_when=cf.FIRST_COMPLETED).done,
                    width=8 * workers, close=pool.shutdown)


def _dask_backend(address: str) -> _Backend:
    from distributed import Client, wait

    client = Client(address)
    scattered: dict[int, Any] = {}

    def submit(plan: extract.AssignmentPlan, *args: Any) -> Any:
        if id(plan) not in scattered:  # send the plan to every worker once
            scattered[id(plan)] = client.scatter(plan, broadcast=True, hash=False)
        return client.submit(grade_submission, scattered[id(plan)], *args, pure=False)

    width = 2 * max(sum(client.nthreads().values()), 1)
    return _Backend(submit=submit, wait_first=lambda fs: set(wait(fs, return_when="FIRST_COMPLETED").done),
                    width=width, close=client.close)


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
              workers: int | None = None, scheduler: str | None = None, timeout: float | None = None,
              force: bool = False, json_lines: bool = False, insecure: bool = False,
              out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Summary:
    """Grade every submission of `assignment` (or those of `students`) into the gradebook.

    On a machine where the sandbox cannot isolate submissions fully (not root, no
    CAP_SYS_ADMIN, no namespaces, no seccomp), grading is refused with a CourseError that
    names what is missing, unless `insecure` (--insecure) is set: then every reason says so."""
    course = read.load_course(Path(course_dir))
    if not scheduler and not insecure:
        _check_isolation()  # refuse at once, not in every worker (Dask workers check their own)
    plans = {}
    for name in extract.notebooks_of(course, assignment):
        plans[name] = extract.plan_assignment(course, assignment, name)
        score.record_calls(plans[name])
    submissions = read.find_submissions(course, assignment, list(plans), list(students) if students else None)
    limits = course.settings.limits
    if timeout is not None:
        limits = replace(limits, wall_seconds=float(timeout))
    local_workers = workers or os.cpu_count() or 1
    preload = course.settings.sandbox_preload
    backend = _dask_backend(scheduler) if scheduler else _local_backend(local_workers, preload, insecure)
    reporter = Reporter(len(submissions), json_lines, out, err)
    writer = GradebookWriter(course)
    results: list[GradedSubmission] = []
    in_flight: dict[Any, tuple[read.Submission, Any]] = {}
    retry: list[tuple[read.Submission, Any]] = []  # claimed, but their worker process died
    retried: set[read.Submission] = set()
    pending = iter(submissions)

    def next_task() -> tuple[read.Submission, Any] | None:
        while retry or (sub := next(pending, None)) is not None:
            if retry:
                return retry.pop()
            held = claim(course, sub)
            if held is None:
                reporter.skipped_one(sub, "another grader is grading it")
            elif not force and writer.is_done(sub, plans[sub.notebook]):
                held.release()
                reporter.skipped_one(sub, "already graded (use --force to grade again)")
            else:
                return sub, held
        return None

    unwritten: list[tuple[GradedSubmission, Any]] = []  # graded, not yet in the gradebook
    last_write = time.monotonic()

    def write() -> None:
        """Commit the graded submissions in one transaction, then report them and let them go."""
        nonlocal last_write
        outcomes = writer.record_many([(result, plans[result.submission.notebook]) for result, _ in unwritten])
        for (result, held), outcome in zip(unwritten, outcomes):
            if isinstance(outcome, Exception):  # a grader fault: report it, leave it ungraded, go on
                reporter.failed_one(result.submission, f"{type(outcome).__name__}: {outcome}")
            else:
                result = replace(result, reason=outcome.reason, notebook="")
                results.append(result)
                reporter.graded_one(result)
            held.release()
        unwritten.clear()
        last_write = time.monotonic()

    try:
        while True:
            while len(in_flight) < backend.width and (task := next_task()) is not None:
                sub, held = task
                try:
                    data = read.read_bytes(sub.path, course.settings.max_notebook_bytes)
                    future = backend.submit(plans[sub.notebook], sub, data, limits, insecure)
                except BrokenProcessPool:  # the pool broke since: retry once it is rebuilt
                    retry.append(task)
                    break
                in_flight[future] = (sub, held)
            if retry and not scheduler and not in_flight:
                # Also when the pool broke between tasks: then the refused submit is the only sign.
                reporter.note(f"a worker process died; {len(retry)} submissions go to a new pool")
                backend.close()
                backend = _local_backend(local_workers, preload, insecure)
                continue
            if not in_flight:
                break
            for future in backend.wait_first(set(in_flight)):
                sub, held = in_flight.pop(future)
                try:
                    unwritten.append((future.result(), held))
                except BrokenProcessPool:
                    # A worker process died (not a sandbox: those die alone), e.g. at the OOM
                    # killer's hand. Its submissions get one more try in a new pool.
                    if sub in retried:
                        reporter.failed_one(sub, "the worker process grading it died twice")
                        held.release()
                    else:
                        retried.add(sub)
                        retry.append((sub, held))
                except Exception as error:  # a grader fault: report it, leave it ungraded, go on
                    reporter.failed_one(sub, f"{type(error).__name__}: {error}")
                    held.release()
            # Many submissions per transaction; at least every WRITE_SECONDS, so a killed batch
            # loses little and progress is reported as it happens.
            if unwritten and (len(unwritten) >= WRITE_BATCH or not in_flight
                              or time.monotonic() - last_write > WRITE_SECONDS):
                write()
        if unwritten:
            write()
    finally:
        for _, held in list(in_flight.values()) + retry:
            held.release()
        for _, held in unwritten:  # killed or failed before their commit: a re-run grades them
            held.release()
        backend.close()
        writer.close()
        reporter.close()
    return Summary(reporter.graded, reporter.skipped, reporter.failed, results)
