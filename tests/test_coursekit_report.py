"""What the instructor reads: unit tests of the class report's parts (coursekit/class_report.py),
the progress reporter (coursekit/report.py) and the course's hidden-test feedback filter
(hide_hidden_tests.py), on small notebooks and results written out here; then `coursekit report`
and `coursekit feedback` on a real gradebook in a copy of the course."""

from __future__ import annotations

import csv
import html
import io
import json
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.api import Gradebook

from coursekit.class_report import (
    CellResult,
    ClassResults,
    GradeCell,
    StudentResult,
    format_table,
    readable,
    render_html,
    short_names,
    tampering_note,
)
from coursekit.gradebook import GradedSubmission
from coursekit.hidden import ADDED_CELL_NOTE, HIDDEN_NOTE, HideHiddenTests
from coursekit.read import Submission
from coursekit.report import Reporter
from tests.helpers import (
    ASSIGNMENT,
    CORRECT,
    COURSE_ID,
    copy_course,
    coursekit,
    leaked_hidden_text,
    nbgrader_env,
    release_notebook,
    solve,
    submit,
)

# standardize dividing by 0.01 instead of the standard deviation: both of its tests fail
WRONG_STANDARDIZE = CORRECT["standardize"].replace("np.where(std == 0, 1.0, std)", "0.01")

# ----------------------------------------------------------------------------- class report

ZEROS_PUBLIC = GradeCell("hw", "test_zeros_public", "initialize_parameters_zeros", False, 1.0)
ZEROS_HIDDEN = GradeCell("hw", "test_zeros_hidden", "initialize_parameters_zeros", True, 2.0)
HE_PUBLIC = GradeCell("hw", "test_he_public", "initialize_parameters_he", False, 1.0)


def student(name: str, scores: tuple[float, float, float], messages: tuple[str, str, str] = ("", "", ""),
            note: str = "", mode: str = "replay") -> StudentResult:
    cells = [CellResult(cell, score, message, mode)
             for cell, score, message in zip((ZEROS_PUBLIC, ZEROS_HIDDEN, HE_PUBLIC), scores, messages)]
    return StudentResult(name, graded=True, notes=[note], cells=cells)


def a_class() -> ClassResults:
    wrong_rows = "AssertionError: W2 has shape (2, 2), expected (1, 2)"
    return ClassResults("hw", [ZEROS_PUBLIC, ZEROS_HIDDEN, HE_PUBLIC], [
        student("ana", (1, 2, 1)),
        student("bo", (0, 0, 1), (wrong_rows, "AssertionError: hidden", ""), note=f"test_zeros_public: {wrong_rows}"),
        student("cy", (0, 0, 1), (wrong_rows, "AssertionError: hidden", ""), note="x" * 300),
        student("<b>dee</b>", (1, 0, 0), ("", "AssertionError: not equal", "NameError: name 'np' is not defined"),
                mode="sandbox"),
    ], notes=[])


def test_column_headings_drop_the_prefix_all_exercises_share():
    assert short_names(["initialize_parameters_zeros", "initialize_parameters_he"]) == {
        "initialize_parameters_zeros": "zeros", "initialize_parameters_he": "he"}
    assert short_names(["mean", "median"]) == {"mean": "mean", "median": "median"}  # cut only at "_"
    assert short_names(["only_one"]) == {"only_one": "only_one"}


def test_the_grade_table_has_one_row_per_student_with_points_per_exercise_and_a_one_line_note():
    lines = format_table(a_class()).splitlines()
    assert lines[0].split() == ["student", "zeros", "he", "total", "note"]
    bo = next(line for line in lines if line.startswith("bo "))
    assert bo.split()[1:4] == ["0/3", "1/1", "1/4"] and bo.endswith("expected (1, 2)")
    cy = next(line for line in lines if line.startswith("cy "))
    assert cy.endswith("x…") and len(cy) < 200  # a long reason is cut in the table, whole in the report


def test_a_bare_error_name_is_explained_and_only_the_first_line_is_kept():
    assert readable("NotImplementedError: ") == \
        "NotImplementedError: the stub raise NotImplementedError() is still there"
    assert readable("AssertionError: W1 differs\nyour W1:\n[[1. 2.]]") == "AssertionError: W1 differs"
    assert readable("AssertionError: \nNot equal to tolerance") == "AssertionError: Not equal to tolerance"
    assert readable("KeyError") == "KeyError" and readable("") == ""


def test_the_report_groups_public_messages_names_hidden_only_failures_and_escapes_everything():
    page = render_html(a_class(), "grades.csv")
    zeros = page[page.index("<h3>initialize_parameters_zeros</h3>"):page.index("<h3>initialize_parameters_he</h3>")]
    assert "<td>2</td><td><code>AssertionError: W2 has shape (2, 2), expected (1, 2)</code></td><td>bo, cy</td>" in zeros
    assert "AssertionError: hidden" not in zeros  # hidden tests' messages are not listed
    assert "1 passed the public tests but failed a hidden one: &lt;b&gt;dee&lt;/b&gt;." in zeros
    assert "<b>dee</b>" not in page
    assert "9 by coursekit (replay), 3 by coursekit (sandbox)" in page


def notebook_with_tests(**sources: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_code_cell(source, metadata={"nbgrader": {"grade": True, "grade_id": grade_id}})
                               for grade_id, source in sources.items()])


def test_tampering_note_names_deleted_and_edited_test_cells(tmp_path: Path):
    release, submitted = tmp_path / "release.ipynb", tmp_path / "submitted.ipynb"
    nbformat.write(notebook_with_tests(t1="assert f(1) == 1", t2="assert f(2) == 4", t3="assert f(3)"), release)
    nbformat.write(notebook_with_tests(t1="assert f(1) == 1", t3="pass"), submitted)
    assert tampering_note(release, submitted, restores_deleted=True) == (
        "test cells deleted, graded with the original code: t2; "
        "test cells edited, graded with the original code: t3")
    assert tampering_note(release, submitted, restores_deleted=False).startswith("test cells deleted, scored 0: t2")
    assert tampering_note(release, release, restores_deleted=False) == ""


# ----------------------------------------------------------------------------- progress reporter


def graded(name: str) -> GradedSubmission:
    return GradedSubmission(submission=Submission(name, "hw", "hw", Path(f"submitted/{name}/hw/hw.ipynb")),
                            scores={"t1": 1.0, "t2": 0.0}, max_scores={"t1": 1.0, "t2": 2.0},
                            messages={"t1": None, "t2": "AssertionError: no"}, unanswered=(),
                            notebook=b"{}", reason="t2: AssertionError: no")


def test_the_progress_reporter_writes_one_json_object_per_submission_and_a_summary(caplog):
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(3, json_lines=True, out=out, err=err)
    reporter.graded_one(graded("ana"))
    reporter.skipped_one(graded("bo").submission, "already graded (use --force to grade again)")
    reporter.failed_one(graded("cy").submission, "KeyError: 'x'")
    reporter.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["status"], line["student"]) for line in lines] == [("graded", "ana"), ("skipped", "bo"),
                                                                     ("error", "cy")]
    assert lines[0]["score"] == 1.0 and lines[0]["max_score"] == 3.0
    assert lines[0]["cells"]["t2"] == {"score": 0.0, "max_score": 2.0, "message": "AssertionError: no",
                                       "mode": "replay"}
    assert "could not grade cy/hw: KeyError: 'x'" in caplog.messages  # for the operator: the log
    assert "graded 1, skipped 1, failed 1" in err.getvalue()
    assert "\r[" not in err.getvalue()  # not a terminal: no progress bar


# ----------------------------------------------------------------------------- feedback filter

HIDDEN_CELL = ("# Autograder: checks f on cases you have not seen.\n### BEGIN HIDDEN TESTS\n"
               "expected = {(7, 1): 0.123456789}\nassert f(7) == expected[(7, 1)]\n### END HIDDEN TESTS")


def feedback_of(*cells: nbformat.NotebookNode, **settings: int) -> list[nbformat.NotebookNode]:
    nb, _ = HideHiddenTests(**settings).preprocess(new_notebook(cells=list(cells)), {})
    return nb.cells


def test_a_hidden_test_shows_its_comment_and_a_one_line_error_but_no_code_data_or_traceback():
    error = new_output("error", ename="AssertionError", evalue="\nNot equal: 0.123456789 != 0.2\nmore",
                       traceback=["assert f(7) == expected[(7, 1)]", "expected = {(7, 1): 0.123456789}"])
    (cell,) = feedback_of(new_code_cell(HIDDEN_CELL, metadata={"nbgrader": {"grade": True, "grade_id": "t"}},
                                        outputs=[error]))
    assert cell.source.strip() == "# Autograder: checks f on cases you have not seen."
    (shown,) = cell.outputs
    assert shown.traceback == ["AssertionError: Not equal: 0.123456789 != 0.2", HIDDEN_NOTE]
    assert "expected" not in json.dumps(shown)


def test_a_long_hidden_message_is_cut_and_a_public_tests_error_stays_whole():
    error = new_output("error", ename="ValueError", evalue="v" * 500, traceback=["line 1", "line 2"])
    hidden, public = feedback_of(
        new_code_cell(HIDDEN_CELL, metadata={"nbgrader": {"grade": True, "grade_id": "h"}}, outputs=[error]),
        new_code_cell("assert f(1) == 1", metadata={"nbgrader": {"grade": True, "grade_id": "p"}},
                      outputs=[error]),
        max_message=50)
    assert len(hidden.outputs[0].evalue) == 50 and hidden.outputs[0].evalue.endswith("…")
    assert public.outputs[0].traceback == ["line 1", "line 2"] and public.source == "assert f(1) == 1"


def test_cells_the_student_added_lose_their_outputs_and_long_prints_are_cut():
    added, chatty = feedback_of(
        new_code_cell("print(expected)", outputs=[new_output("stream", name="stdout", text="{(7, 1): 0.12}\n")]),
        new_code_cell("f(1)", metadata={"nbgrader": {"solution": True, "grade_id": "s"}},
                      outputs=[new_output("stream", name="stdout", text="spam " * 1000)]),
        max_output_chars=100)
    assert [o.text for o in added.outputs] == [ADDED_CELL_NOTE + "\n"]
    assert chatty.outputs[0].text.startswith("spam " * 20)
    assert "4900 more characters not shown" in chatty.outputs[0].text


# ----------------------------------------------------------------------------- on a real gradebook


def run_verb(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", *args, "--course-dir", str(course)],
                          env=nbgrader_env(), capture_output=True, text=True, timeout=600)


def test_the_report_shows_stored_reasons_only_while_they_match_the_gradebook(template_course, tmp_path):
    course = copy_course(template_course, tmp_path / "course")
    submit(course, "ana", solve(release_notebook(course), {**CORRECT, "standardize": WRONG_STANDARDIZE}))
    submit(course, "bo", solve(release_notebook(course), {**CORRECT, "standardize": WRONG_STANDARDIZE}))
    coursekit(course)
    # Another grader (here a person, through nbgrader's API) gives bo the public standardize test's point.
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.find_grade("test_standardize_public", ASSIGNMENT, ASSIGNMENT, "bo").auto_score = 1.0
        gb.db.commit()
    proc = run_verb(course, "report", ASSIGNMENT, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith(("ana ", "bo "))}
    assert rows["ana"].split()[3] == "0/3" and rows["bo"].split()[3] == "1/3"
    assert "test_standardize_public: AssertionError" in rows["ana"]  # coursekit's stored reason
    # bo's stored reason is stale: the report says only what the autograded notebook says of the
    # points bo still lacks, and counts bo's cells as graded by someone other than coursekit.
    assert "test_standardize_public" not in rows["bo"] and "test_standardize_hidden: AssertionError" in rows["bo"]
    page = (tmp_path / "out" / "class_report.html").read_text(encoding="utf-8")
    assert f"<td>{ASSIGNMENT}/test_standardize_public</td>" in page
    assert "6 by nbgrader, 6 by coursekit (replay)" in page
    with open(tmp_path / "out" / "grades.csv", newline="", encoding="utf-8") as grades:
        assert len(list(csv.reader(grades))) == 3  # header + two students (a note may hold line breaks)


def test_feedback_hides_hidden_tests_with_coursekits_filter_when_the_course_lists_none(template_course, tmp_path):
    course = copy_course(template_course, tmp_path / "course")
    with open(course / "nbgrader_config.py", "a", encoding="utf-8") as config:  # nbgrader's own list only
        config.write('\nc.GenerateFeedback.preprocessors = ["nbgrader.preprocessors.GetGrades"]\n')
    submit(course, "ana", solve(release_notebook(course), {**CORRECT, "standardize": WRONG_STANDARDIZE}))
    coursekit(course)
    proc = run_verb(course, "feedback", ASSIGNMENT, "--log-level", "INFO")
    assert proc.returncode == 0, proc.stderr
    assert "coursekit.hidden.HideHiddenTests" in proc.stderr  # it says what it ran
    (page,) = (course / "feedback" / "ana" / ASSIGNMENT).glob("*.html")
    text = html.unescape(page.read_text(encoding="utf-8"))
    assert HIDDEN_NOTE in text and leaked_hidden_text(text) == []


def test_a_report_before_any_grading_says_what_to_run(template_course, tmp_path):
    proc = run_verb(copy_course(template_course, tmp_path / "course"), "report", ASSIGNMENT)
    assert proc.returncode == 2 and f"coursekit autograde {ASSIGNMENT}" in proc.stderr
