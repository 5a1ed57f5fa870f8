"""Broken and hostile submissions through the stock nbgrader loop, in a temporary course copy.

Each gets zero for what it did not earn and a note the instructor can read (in the progress
line of scripts/grade_class.py and in `coursekit report`, which falls back on the files
nbgrader leaves); none stops the batch (a correct student graded last still gets 9) or damages
the gradebook.  Deleted test cells are put back (OverwriteCells.add_missing_cells), so a
correct notebook without its test cells gets 9/9.  The cell time limit is lowered to
CELL_TIMEOUT in the copy so that the endless loop costs half a minute per cell, not the course's
minutes; it keeps a wide margin over the slowest honest cell (the first cell's imports take about
2 s on a quiet machine: a 5 s limit fired there on a loaded one), and the loop sleeps, so its
three cells cost wall-clock time but no CPU.
The grading run as a whole is capped at 8 GiB of address space, a safety net in
case the kernel's own memory limit (nbgrader_config.py, 4 GiB) failed.
"""

from __future__ import annotations

import html
import re
import resource
import sqlite3
import sys
from pathlib import Path

import nbformat
import pytest

from scripts.course import ASSIGNMENT, EXERCISES, MASTER, ROOT
from scripts.courses import COURSE_ID
from scripts.make_demo_class import STUDENTS, DemoStudent, student_notebook
from scripts.student_work import CORRECT
from tests.helpers import cell_points, cell_scores, demo_course, leaked_hidden_text, run

# About two minutes of stock nbgrader on ten notebooks: `make test` runs it, `make test-quick` skips it.
pytestmark = pytest.mark.slow

SAFETY_NET = 8 * 2**30
CELL_TIMEOUT = 30  # seconds
KERNEL_LIMIT_GIB = 4


def with_body(grade_id: str, body: str) -> nbformat.NotebookNode:
    """All three functions correct except ``grade_id``, whose stub is replaced by ``body``."""
    return student_notebook(DemoStudent("bad input", stub={**CORRECT, grade_id: body}))


def without_zeros_tests() -> nbformat.NotebookNode:
    nb = student_notebook(STUDENTS["demo-all-correct"])
    nb.cells = [c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") not in ("test_zeros_public", "test_zeros_hidden")]
    return nb


def with_tests_replaced_by_pass() -> nbformat.NotebookNode:
    nb = student_notebook(STUDENTS["demo-untouched"])
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "pass  # all tests pass now"
    return nb


def with_cell_printing_hidden_data() -> nbformat.NotebookNode:
    """A correct notebook plus a cell of the student's own, after the hidden random test."""
    nb = student_notebook(STUDENTS["demo-all-correct"])
    (index,) = [i for i, c in enumerate(nb.cells)
                if c.metadata.get("nbgrader", {}).get("grade_id") == "test_random_hidden"]
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("print(expected_random)"))
    return nb


def not_utf8() -> bytes:
    text = nbformat.writes(student_notebook(STUDENTS["demo-all-correct"]))
    return text.replace("layer sizes", "tailles des couches, élan").encode("latin-1", "replace")


# Asks for 1 GiB blocks until refused.  np.empty reserves address space without
# writing it, which is what RLIMIT_AS counts, so the test is quick and costs no RAM.
MEMORY_HOG = """\
blocks = []
try:
    while True:
        blocks.append(np.empty(2**27))
finally:
    print(f"held {len(blocks)} GiB when allocation stopped")"""

SUBMISSIONS: dict[str, nbformat.NotebookNode | bytes] = {
    "bad-empty": b"",
    "bad-not-utf8": not_utf8(),
    "bad-deleted-tests": without_zeros_tests(),
    "bad-edited-tests": with_tests_replaced_by_pass(),
    "bad-endless-loop": with_body("initialize_parameters_zeros", "import time\nwhile True:\n    time.sleep(0.1)"),
    "bad-sys-exit": with_body("initialize_parameters_he", 'import sys\nsys.exit("bye")'),
    "bad-kernel-exit": with_body("initialize_parameters_he", "import os\nos._exit(1)"),
    "bad-megabytes-of-print": with_body(
        "initialize_parameters_random",
        'print("spam " * 100_000)\nfor i in range(20_000):\n    print(i)\n' + CORRECT["initialize_parameters_random"]),
    "bad-memory-hog": with_body("initialize_parameters_he", MEMORY_HOG),
    "bad-prints-hidden-data": with_cell_printing_hidden_data(),
    "zz-correct-after-all-that": student_notebook(STUDENTS["demo-all-correct"]),
}
EXPECTED = {  # student: (zeros, random, he) or None when nbgrader cannot grade it at all
    "bad-empty": None,
    "bad-not-utf8": None,
    "bad-deleted-tests": (3, 3, 3),  # nbgrader puts the deleted test cells back and runs them
    "bad-edited-tests": (0, 0, 0),
    "bad-endless-loop": (0, 3, 3),
    "bad-sys-exit": (3, 3, 0),
    "bad-kernel-exit": None,
    "bad-megabytes-of-print": (3, 3, 3),
    "bad-memory-hog": (3, 3, 0),
    "bad-prints-hidden-data": (3, 3, 3),
    "zz-correct-after-all-that": (3, 3, 3),
}
TAMPERING = {
    "bad-deleted-tests": "test cells deleted, graded with the original code: test_zeros_public, test_zeros_hidden",
    "bad-edited-tests": "test cells edited, graded with the original code: test_zeros_public, "
                        "test_zeros_hidden, test_random_public, test_random_hidden, test_he_public, test_he_hidden",
}
NOTES = {  # what grade_class.py's progress line says, from nbgrader's log
    "bad-empty": "the file is not a notebook",
    "bad-not-utf8": "the file is not UTF-8 text",
    "bad-kernel-exit": "the kernel died",
    **TAMPERING,
}
REPORT_NOTES = {  # what the class report says, from the submitted file (there is no log to read)
    "bad-empty": "not graded, scored 0: initialization.ipynb is empty",
    "bad-not-utf8": "not graded, scored 0: initialization.ipynb is not UTF-8 text",
    "bad-kernel-exit": "nbgrader wrote no autograded notebook (its kernel may have died",
    **TAMPERING,
}


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (SAFETY_NET, SAFETY_NET))


@pytest.fixture(scope="module")
def bad_class(tmp_path_factory, course_env):
    course = demo_course(tmp_path_factory.mktemp("bad") / "course", course_env, ROOT, ASSIGNMENT,
                         f"c.ExecutePreprocessor.timeout = {CELL_TIMEOUT}")
    for student, content in SUBMISSIONS.items():
        path = course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_bytes(content if isinstance(content, bytes) else nbformat.writes(content).encode())
    graded = run(course, course_env, sys.executable, "-m", "scripts.grade_class", "--jobs", "2",
                 preexec_fn=limit_address_space)
    run(course, course_env, sys.executable, "-m", "coursekit", "feedback", ASSIGNMENT)
    run(course, course_env, sys.executable, "-m", "coursekit", "report", ASSIGNMENT)
    report = html.unescape((course / "reports" / "class_report.html").read_text(encoding="utf-8"))
    return course, graded, report


def cell_errors(course: Path, student: str, grade_id: str) -> list[str]:
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]


@pytest.mark.parametrize("student", EXPECTED)
def test_each_bad_submission_scores_only_what_it_earned(bad_class, student):
    course, _, _ = bad_class
    scores = cell_scores(course, ASSIGNMENT, COURSE_ID)
    expected = cell_points(EXPECTED[student] or (0, 0, 0), EXERCISES)
    assert {cell: scores.get((student, cell), 0) for cell in expected} == expected


@pytest.mark.parametrize("student", NOTES)
def test_the_instructor_reads_why_while_grading(bad_class, student):
    _, graded, _ = bad_class
    assert NOTES[student] in next(line for line in graded.splitlines() if f" {student} " in line)


@pytest.mark.parametrize("student", REPORT_NOTES)
def test_the_class_report_says_why(bad_class, student):
    _, _, report = bad_class
    row = next(row for row in report.split("<tr>") if row.startswith(f"<td>{student}</td>"))
    assert REPORT_NOTES[student] in row


def test_the_batch_runs_to_the_end(bad_class):
    _, graded, _ = bad_class
    last = [line for line in graded.splitlines() if line.startswith("[")][-1]
    assert last.startswith(f"[{len(SUBMISSIONS)}/{len(SUBMISSIONS)}] zz-correct-after-all-that ")
    assert " 9/9 " in last


def test_the_gradebook_is_intact_and_has_one_submission_each(bad_class):
    course, _, _ = bad_class
    db = sqlite3.connect(course / "gradebook.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone() == (len(SUBMISSIONS),)
    finally:
        db.close()


def test_an_endless_loop_is_stopped_by_the_cell_timeout(bad_class):
    course, _, report = bad_class
    assert cell_errors(course, "bad-endless-loop", "test_zeros_public")[-1].startswith("CellTimeoutError")
    assert "CellTimeoutError: the cell ran past the time limit (an endless loop?)" in report


def test_sys_exit_fails_only_the_cells_that_call_it(bad_class):
    course, _, _ = bad_class
    assert cell_errors(course, "bad-sys-exit", "test_he_public") == ["SystemExit: bye"]
    assert cell_errors(course, "bad-sys-exit", "test_random_public") == []


def test_a_memory_hog_gets_memory_error_at_the_kernel_limit(bad_class):
    course, _, _ = bad_class
    assert cell_errors(course, "bad-memory-hog", "test_he_public")[0].startswith("MemoryError: Unable to allocate")
    nb = nbformat.read(course / "autograded" / "bad-memory-hog" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_he_public"]
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    held = int(re.search(r"held (\d+) GiB", printed).group(1))
    # Below the kernel's own limit, so that limit acted, not the 8 GiB safety net of this test.
    assert 0 < held < KERNEL_LIMIT_GIB


def test_megabytes_of_print_stay_out_of_feedback(bad_class):
    course, _, _ = bad_class
    page = course / "feedback" / "bad-megabytes-of-print" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = page.read_text(encoding="utf-8")
    assert "more characters not shown" in text
    # The autograded notebook holds ~2.5 MB of prints; the page holds a capped part of them: it is
    # at most a few cells' worth (20,000 characters each) larger than a quiet student's page, whose
    # size is mostly the lesson's figures.
    quiet = course / "feedback" / "zz-correct-after-all-that" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert page.stat().st_size < quiet.stat().st_size + 200_000


def test_a_cell_the_student_added_cannot_leak_hidden_test_data_into_feedback(bad_class):
    course, _, _ = bad_class
    nb = nbformat.read(course / "autograded" / "bad-prints-hidden-data" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    (added,) = [c for c in nb.cells if c.source == "print(expected_random)"]
    assert leaked_hidden_text(added.outputs[0].text, MASTER) != []  # when grading, it did print them
    page = course / "feedback" / "bad-prints-hidden-data" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = page.read_text(encoding="utf-8")
    assert leaked_hidden_text(text, MASTER) == []
    assert "(Outputs of cells you added are not included in feedback.)" in text
