"""Autograde every submission in submitted/ with the stock nbgrader CLI, one student at a time.

    python scripts/grade_class.py [STUDENT ...]

Runs ``nbgrader autograde initialization --student=ID --force`` for each student
folder in submitted/ (or only the students named), prints one progress line per
student with the score or the reason it could not be graded, and writes:

    reports/logs/autograde-<student>.log   nbgrader's full log for that student
    reports/autograde-status.json          graded or not, a note on what went wrong, seconds taken

One nbgrader call per student keeps a broken submission from hiding the others'
progress; --force regrades from scratch, so a second run gives the same grades
(nbgrader updates the student's rows in the gradebook, it never adds new ones).
Exits 0 even when some submissions could not be graded: they get zero, and the
class report lists why.  Test cells a student deleted or edited are noted too:
nbgrader grades edited ones with the release's code, and deleted ones score 0.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from class_report import ASSIGNMENT, ROOT, STATUS_FILE, Gradebook, gradebook_url

LOG_DIR = ROOT / "reports" / "logs"
# The last "SomeError: message" line of a traceback in nbgrader's log.
EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")
# What the usual failures mean, keyed by a name in the exception line.
KNOWN_FAILURES = {
    "NotJSONError": "the file is not a notebook (empty, cut off or not JSON); ask for a resubmission",
    "UnicodeDecodeError": "the file is not UTF-8 text, so not a notebook; ask for a resubmission",
    "DeadKernelError": "the kernel died while running it (os._exit, a crash or the OOM killer); grade it by hand",
}
RELEASE = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


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


def test_cell_sources(path: Path) -> dict[str, str]:
    """grade_id -> source of every autograded test cell in a notebook."""
    nb = nbformat.read(path, as_version=4)
    return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def tampering_note(submitted: Path) -> str:
    """Which test cells the student deleted or edited, compared with the release."""
    released, handed_in = test_cell_sources(RELEASE), test_cell_sources(submitted)
    deleted = [g for g in released if g not in handed_in]
    edited = [g for g in released if g in handed_in and handed_in[g] != released[g]]
    notes = []
    if deleted:
        notes.append(f"test cells deleted, scored 0: {', '.join(deleted)}")
    if edited:
        notes.append(f"test cells edited, graded with the original code: {', '.join(edited)}")
    return "; ".join(notes)


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
    if graded:
        note = tampering_note(ROOT / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    else:
        note = (f"not graded, scored 0: {failure_reason(proc.stdout + proc.stderr)} "
                f"(log: {log_path.relative_to(ROOT)})")
    return {"graded": graded, "note": note, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("students", nargs="*", help="student ids (default: every folder in submitted/)")
    args = parser.parse_args()
    students = args.students or sorted(p.parent.name for p in (ROOT / "submitted").glob(f"*/{ASSIGNMENT}"))
    if not students:
        print(f"No submissions: expected submitted/<student>/{ASSIGNMENT}/ folders in {ROOT}", file=sys.stderr)
        return 1

    status = json.loads(STATUS_FILE.read_text()) if STATUS_FILE.exists() else {}
    print(f"Autograding {len(students)} submission(s) with nbgrader (5-10 s each).", flush=True)
    for i, student in enumerate(students, 1):
        result = autograde(student)
        status[student] = result
        STATUS_FILE.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
        with Gradebook(gradebook_url()) as gb:
            submission = gb.find_submission(ASSIGNMENT, student)
            score = f"{submission.score:g}/{submission.max_score:g}"
        print(f"[{i}/{len(students)}] {student:<28} {score:>5}  ({result['seconds']:>4} s)  {result['note']}".rstrip(),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
