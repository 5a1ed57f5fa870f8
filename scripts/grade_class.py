"""Autograde every submission in submitted/ with the stock nbgrader CLI, one student at a time.

    python -m scripts.grade_class [--jobs N] [STUDENT ...]        (`make grade-nbgrader`)

The reference path beside `make grade` (which uses `coursekit autograde`): it runs
``nbgrader autograde initialization --student=ID --force`` for each student folder in
submitted/ (or only the students named), prints one progress line per student with the
score and what went wrong, and keeps nbgrader's full log of each student in
reports/logs/autograde-<student>.log.  `coursekit report initialization` (`make report`)
then builds the class report from the gradebook and the autograded notebooks.

One nbgrader call per student keeps a broken submission from hiding the others' progress;
`--jobs N` runs N of those calls side by side (stock nbgrader keeps one core busy); the lines
still come in student order;
--force regrades from scratch, so a second run gives the same grades (nbgrader updates the
student's rows in the gradebook, it never adds new ones).  Exits 0 even when some
submissions could not be graded: they get zero, and the line says why.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from nbgrader.api import Gradebook, MissingEntry

from coursekit.class_report import restores_deleted_cells, tampering_note
from coursekit.read import Course, load_course
from scripts.course import ASSIGNMENT, ROOT

LOG_DIR = ROOT / "reports" / "logs"
# The last "SomeError: message" line of a traceback in nbgrader's log.
EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
# What the usual failures mean, keyed by a name in the exception line.
KNOWN_FAILURES = {
    "NotJSONError": "the file is not a notebook (empty, cut off or not JSON); ask for a resubmission",
    "UnicodeDecodeError": "the file is not UTF-8 text, so not a notebook; ask for a resubmission",
    "DeadKernelError": "the kernel died while running it (os._exit, a crash or the OOM killer); grade it by hand",
}


def failure_reason(log: str) -> str:
    """A one-line reason for a failed autograde, taken from nbgrader's log."""
    matches = [m for m in map(EXCEPTION_LINE.match, log.splitlines()) if m]
    if not matches:
        return "nbgrader stopped without an exception message"
    # A chained traceback prints the root cause first: it says most (e.g. where the JSON breaks).
    name, message = matches[0].groups()
    name = name.rsplit(".", 1)[-1]
    message = message if len(message) <= 120 else message[:119] + "…"
    exception = f"{name}: {message}" if message else name
    names = " ".join(m.group(1) for m in matches)
    meaning = next((text for key, text in KNOWN_FAILURES.items() if key in names), "")
    return f"{meaning} [{exception}]" if meaning else exception


def autograde(student: str, restores_deleted: bool) -> tuple[str, float]:
    """Run nbgrader on one student's submission; (what to say about it, seconds taken)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"autograde-{student}.log"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, f"--student={student}", "--force"],
        cwd=ROOT, capture_output=True, text=True, errors="replace",
    )
    seconds = round(time.perf_counter() - start, 1)
    log_path.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    notebook = ROOT / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    if proc.returncode == 0 and notebook.exists():
        return tampering_note(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                              ROOT / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                              restores_deleted), seconds
    return (f"not graded, scored 0: {failure_reason(proc.stdout + proc.stderr)} "
            f"(log: {log_path.relative_to(ROOT)})"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("students", nargs="*", help="student ids (default: every folder in submitted/)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="grade N students side by side (default 1: one at a time)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    students = args.students or sorted(p.parent.name for p in (ROOT / "submitted").glob(f"*/{ASSIGNMENT}"))
    if not students:
        print(f"No submissions: expected submitted/<student>/{ASSIGNMENT}/ folders in {ROOT}", file=sys.stderr)
        return 1
    course = load_course(ROOT)
    restores_deleted = restores_deleted_cells(course)

    print(f"Autograding {len(students)} submission(s) with nbgrader (5-10 s each).", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = pool.map(lambda student: (student, *autograde(student, restores_deleted)), students)
        for i, (student, note, seconds) in enumerate(outcomes, 1):
            print_line(course, f"[{i}/{len(students)}] {student:<28}", student, note, seconds)
    return 0


def print_line(course: Course, head: str, student: str, note: str, seconds: float) -> None:
    """One progress line: the student's score as the gradebook holds it, the time, the note."""
    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            submission = gb.find_submission(ASSIGNMENT, student)
            score = f"{submission.score:g}/{submission.max_score:g}"
        except MissingEntry:  # nbgrader stopped before recording the student
            score = "0/?"
    print(f"{head} {score:>5}  ({seconds:>4} s)  {note}".rstrip(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
