"""Autograde every submission in submitted/ with the stock nbgrader CLI, one student at a time.

    python scripts/grade_class.py [STUDENT ...]

Runs ``nbgrader autograde initialization --student=ID --force`` for each student
folder in submitted/ (or only the students named), prints one progress line per
student with the score or the reason it could not be graded, and writes:

    reports/logs/autograde-<student>.log   nbgrader's full log for that student
    reports/autograde-status.json          graded or not, the reason, seconds taken

One nbgrader call per student keeps a broken submission from hiding the others'
progress; --force regrades from scratch, so a second run gives the same grades
(nbgrader updates the student's rows in the gradebook, it never adds new ones).
Exits 0 even when some submissions could not be graded: they get zero, and the
class report lists why.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from class_report import ASSIGNMENT, ROOT, STATUS_FILE, Gradebook, gradebook_url

LOG_DIR = ROOT / "reports" / "logs"
# The last "SomeError: message" line of a traceback in nbgrader's log.
EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")


def failure_reason(log: str) -> str:
    """A one-line reason for a failed autograde, taken from nbgrader's log."""
    matches = [m for m in map(EXCEPTION_LINE.match, log.splitlines()) if m]
    if not matches:
        return "nbgrader stopped without an exception message"
    name, message = matches[-1].groups()
    message = message if len(message) <= 160 else message[:159] + "…"
    return f"{name}: {message}" if message else name


def autograde(student: str) -> dict:
    """Run nbgrader on one student's submission and describe the outcome."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"autograde-{student}.log"
    start = time.perf_counter()
    proc = subprocess.run(
        ["nbgrader", "autograde", ASSIGNMENT, f"--student={student}", "--force"],
        cwd=ROOT, capture_output=True, text=True, errors="replace",
    )
    seconds = round(time.perf_counter() - start, 1)
    log_path.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    notebook = ROOT / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    graded = proc.returncode == 0 and notebook.exists()
    reason = "" if graded else (
        f"not graded, scored 0: {failure_reason(proc.stdout + proc.stderr)} "
        f"(nbgrader log: {log_path.relative_to(ROOT)})")
    return {"graded": graded, "reason": reason, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("students", nargs="*", help="student ids (default: every folder in submitted/)")
    args = parser.parse_args()
    students = args.students or sorted(p.parent.name for p in (ROOT / "submitted").glob(f"*/{ASSIGNMENT}"))
    if not students:
        print(f"No submissions: expected submitted/<student>/{ASSIGNMENT}/ folders in {ROOT}", file=sys.stderr)
        return 1

    status = json.loads(STATUS_FILE.read_text()) if STATUS_FILE.exists() else {}
    print(f"Autograding {len(students)} submission(s) with nbgrader (about 6 s each)...", flush=True)
    for i, student in enumerate(students, 1):
        result = autograde(student)
        status[student] = result
        STATUS_FILE.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
        with Gradebook(gradebook_url()) as gb:
            submission = gb.find_submission(ASSIGNMENT, student)
            outcome = f"{submission.score:g}/{submission.max_score:g}" if result["graded"] else result["reason"]
        print(f"[{i}/{len(students)}] {student:<28} {outcome}  ({result['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
