"""A class with the attacks of issue 19 among honest students, graded, reported and given feedback
through the real CLI (hostile code runs only in the sandbox), then the pages opened in Chromium.

Each attack is a class of input, not one payload: slow IPython input transformation (``?``,
``!``, ``%`` lines), bytes that are no notebook (huge integers, deep nesting, old or broken
formats, random bytes), terminal escapes and bidirectional controls in messages and student ids,
formulas in student ids, printing a lot of non-ASCII text, and student HTML meant to run script.
Every other student is graded as usual, and every command goes on for the class.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import nbformat
import pytest
from playwright.sync_api import sync_playwright

from coursekit.read import Unreadable, parse_notebook
from tests.helpers import (
    ASSIGNMENT,
    CHROMIUM,
    CHROMIUM_ARGS,
    FULL,
    assert_graded,
    copy_course,
    coursekit,
    gradebook_scores,
    index_of,
    nbgrader_env,
    release_notebook,
    solved,
    submit,
)

ZERO = dict.fromkeys(FULL, 0.0)
ESCAPES = "\x1b[2K\r\x1b[1A\x1b[32mhonest-a 3/3 3/3 3/3 9/9\x1b[0m\u202e9/0\u202c"


def with_cell(nb: dict, source: str) -> dict:
    nb["cells"].append(nbformat.v4.new_code_cell(source))
    return nb


def standardize_raising(nb: dict, message: str) -> dict:
    """A correct notebook whose standardize function raises an exception with `message`."""
    cell = nb["cells"][index_of(nb, "standardize")]
    cell["source"] = cell["source"].replace("    return (X", f"    raise ValueError({message!r})\n    return (X")
    return nb


def chatty(nb: dict) -> dict:
    """Correct code that prints 30 000 non-ASCII characters at every call."""
    for name in ("center", "add_noise", "standardize"):
        cell = nb["cells"][index_of(nb, name)]
        cell["source"] = cell["source"].replace("\n    return ", "\n    print('Grüße, 你好! ' * 3000)\n    return ", 1)
    return nb


def huge_integer(nb: dict) -> bytes:
    text = json.dumps(nb)
    return text.replace('"metadata": {', '"metadata": {"n": ' + "7" * 5000 + ", ", 1).encode()


def lines_of(line: str) -> str:
    """A cell just under the 100 000-character limit, made of one short line of IPython syntax."""
    return line * (99_000 // len(line))


SCRIPT_MARK = "window.__attacked = (window.__attacked || 0) + 1"
HOSTILE_MARKDOWN = f"""# My answers

<script>{SCRIPT_MARK}</script>
<img src="x" onerror="{SCRIPT_MARK}">
<a href="javascript:{SCRIPT_MARK}">click me</a> [also me](javascript:{SCRIPT_MARK})
<svg onload="{SCRIPT_MARK}"><circle r="3"/></svg>
<iframe srcdoc="<script>parent.{SCRIPT_MARK}</script>"></iframe>
<details open ontoggle="{SCRIPT_MARK}">x</details>
<object data="javascript:{SCRIPT_MARK}"></object><embed src="javascript:{SCRIPT_MARK}">
<style>body {{ display: none }}</style>
"""


def hostile_html(nb: dict) -> dict:
    """Student HTML in markdown, in outputs of every kind, in metadata, and in an exception message."""
    nb = standardize_raising(nb, f"<img src=x onerror='{SCRIPT_MARK}'>")
    nb["cells"].insert(1, nbformat.v4.new_markdown_cell(HOSTILE_MARKDOWN))
    shown = nbformat.v4.new_code_cell("print('hi')")
    shown["outputs"] = [
        nbformat.v4.new_output("display_data", {"text/html": f"<b onmouseover='{SCRIPT_MARK}'>hi</b>"
                                                              f"<script>{SCRIPT_MARK}</script>"}),
        nbformat.v4.new_output("display_data", {"application/javascript": SCRIPT_MARK}),
        nbformat.v4.new_output("display_data", {"image/svg+xml": f"<svg xmlns='http://www.w3.org/2000/svg' "
                                                                  f"onload='{SCRIPT_MARK}'/>"}),
        nbformat.v4.new_output("display_data", {"text/markdown": f"<img src=x onerror='{SCRIPT_MARK}'>"}),
        nbformat.v4.new_output("display_data", {"image/png": f"\"><script>{SCRIPT_MARK}</script>"}),
        nbformat.v4.new_output("display_data", {"text/html": f"<script>{SCRIPT_MARK}</script>"},
                               metadata={"text/html": {"isolated": True}}),
    ]
    shown["metadata"]["tags"] = [f"\"><script>{SCRIPT_MARK}</script>"]
    nb["cells"].insert(2, shown)
    nb["cells"].insert(3, nbformat.v4.new_raw_cell(f"<script>{SCRIPT_MARK}</script>",
                                                   metadata={"raw_mimetype": "text/html"}))
    return nb


def honest(nb: dict) -> dict:
    return nb


# student -> (their submission, made from a correct notebook; scores; what the reason says)
CLASS: dict[str, tuple[Callable[[dict], dict | bytes], dict[str, float], str]] = {
    "honest-a": (honest, FULL, ""),
    "honest-b": (honest, FULL, ""),
    "slow-help": (lambda nb: with_cell(nb, lines_of("a?\n")), ZERO, "took the grader more than 10 s to turn into Python"),
    "slow-shell": (lambda nb: with_cell(nb, lines_of("x = !ls\n")), ZERO,
                   "took the grader more than 10 s to turn into Python"),
    "slow-magic": (lambda nb: with_cell(nb, lines_of("%ls\n")), ZERO, "took the grader more than 10 s to turn into Python"),
    "huge-integer": (huge_integer, ZERO, "holds a value Python refuses to read"),
    "deep-nesting": (lambda nb: b'{"cells": ' + b"[" * 200_000, ZERO, "nested deeper than 64 levels"),
    "old-format": (lambda nb: b'{"nbformat": 3, "cells": [], "worksheets": 7}', ZERO, "not a notebook nbformat can read"),
    "random-bytes": (lambda nb: random.Random(19).randbytes(5000), ZERO, "is not UTF-8 text"),
    "escapes": (lambda nb: standardize_raising(nb, ESCAPES), dict(FULL, standardize=0.0), "ValueError"),
    "esc\x1b[31mape\u202e": (honest, FULL, ""),
    "=HYPERLINK(\"evil.example\",\"9\")": (honest, FULL, ""),
    "@SUM(1+1)": (honest, FULL, ""),
    "chatty": (chatty, FULL, ""),
    "hostile-html": (hostile_html, dict(FULL, standardize=0.0), "ValueError"),
}


def run_verb(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", *args, "--course-dir", str(course)],
                          env=nbgrader_env(), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, template_course):
    """The class graded twice (the second time with --force), then reported."""
    course = copy_course(template_course, tmp_path_factory.mktemp("attacks") / "course")
    for student, (make, _, _) in CLASS.items():
        submit(course, student, make(solved(template_course)))
    first = {r["student"]: r for r in coursekit(course)}  # exits 0: nothing left ungraded
    again = {r["student"]: r for r in coursekit(course, "--force")}
    report = run_verb(course, "report", ASSIGNMENT, "--out", str(course / "out"))
    return course, first, again, report


@pytest.mark.parametrize("student", CLASS)
def test_each_student_gets_a_grade_and_a_reason_and_the_same_again_on_a_rerun(graded, student):
    course, first, again, _ = graded
    _, expected, note = CLASS[student]
    for result in (first[student], again[student]):
        assert_graded(result, expected, note)
    assert first[student]["reason"] == again[student]["reason"]
    stored = gradebook_scores(course)
    assert sum(stored[(student, cell)] for cell in first[student]["cells"]) == sum(expected.values())


def test_a_slow_cell_is_named_in_the_reason(graded, template_course):
    _, first, _, _ = graded
    cell = len(release_notebook(template_course)["cells"]) + 1  # the one added at the end
    assert re.search(rf"cell {cell} \(12,37\d lines\) took the grader more than 10 s", first["slow-shell"]["reason"])
    assert f"shorten cell {cell}" in first["slow-shell"]["reason"]


def test_the_report_goes_on_for_the_class_and_prints_no_control_character(graded):
    _, _, _, report = graded
    assert report.returncode == 0, report.stderr
    rows = report.stdout.splitlines()
    assert not any(ch in report.stdout + report.stderr for ch in "\x1b\r\u202e\u202c")
    assert len([r for r in rows if r.endswith("/9") or "/9 " in r]) == len(CLASS)
    row = next(r for r in rows if r.startswith("escapes "))
    assert "6/9" in row and "\\x1b[2K" in row  # shown, not acted on
    assert any(r.startswith("esc\\x1b[31mape\\u202e ") for r in rows)


def test_grades_csv_has_nbgraders_columns_and_no_cell_a_spreadsheet_reads_as_a_formula(graded):
    course, _, _, _ = graded
    with open(course / "out" / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                       "raw_score", "late_submission_penalty", "score", "max_score"]
    ids = {row[3]: row for row in rows[1:]}
    assert "'=HYPERLINK(\"evil.example\",\"9\")" in ids and "'@SUM(1+1)" in ids
    assert "esc\\x1b[31mape\\u202e" in ids
    assert float(ids["honest-a"][9]) == 9.0 and float(ids["slow-help"][9]) == 0.0
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_a_reader_fuzzed_with_varied_bytes_never_raises(template_course):
    """Mutations of a real notebook's bytes: flips, cuts, insertions of digits, brackets and
    quotes.  Each is a notebook or a reason, never an exception."""
    original = json.dumps(solved(template_course)).encode()
    rng = random.Random(1919)
    pieces = [b"9" * 5000, b"[" * 300, b"{" * 300, b'"', b"\\ud800", b"\xff", b"\x00", b"null", b"-1e999",
              b'{"nbformat": 3}', b'"cells": 1', b'"metadata": []', b'"source": 7']
    kinds = {"notebook": 0, "unreadable": 0}
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            what = rng.random()
            if what < 0.3:
                data[at] = rng.randrange(256)
            elif what < 0.5:
                del data[at:]
            else:
                data[at:at] = rng.choice(pieces)
        nb = parse_notebook(bytes(data))
        kinds["unreadable" if isinstance(nb, Unreadable) else "notebook"] += 1
    assert kinds["unreadable"] > 100 and kinds["notebook"] > 10  # both outcomes were exercised


# ----------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def feedback(graded):
    course, _, _, _ = graded
    done = run_verb(course, "feedback", ASSIGNMENT)
    assert done.returncode == 0, done.stderr
    return course


def scripts_that_ran(page_file: Path) -> tuple[int, list[str]]:
    """Open the page in headless Chromium, hover and click everything, and count the student's
    scripts that ran (each one adds to window.__attacked); also any dialog."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(page_file.as_uri(), wait_until="load")
            page.wait_for_timeout(500)
            for element in page.query_selector_all("a, b, img, details, svg"):
                try:
                    element.hover(timeout=500)
                    element.click(timeout=500, no_wait_after=True)
                except Exception:  # hidden or covered elements: the script check below still holds
                    pass
            page.wait_for_timeout(500)
            counts = [frame.evaluate("window.__attacked || 0") for frame in page.frames]
            return sum(counts), dialogs
        finally:
            browser.close()


@pytest.mark.browser
def test_no_student_script_runs_in_a_feedback_page(feedback):
    page_file = feedback / "feedback" / "hostile-html" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = page_file.read_text(encoding="utf-8")
    assert "My answers" in text and "hi" in text  # the student's work is still shown
    assert scripts_that_ran(page_file) == (0, [])


@pytest.mark.browser
def test_no_student_script_runs_in_the_class_report(graded):
    course, _, _, _ = graded
    assert scripts_that_ran(course / "out" / "class_report.html") == (0, [])


def test_feedback_goes_on_for_the_class(feedback):
    pages = {p.parts[-3] for p in (feedback / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")}
    assert {"honest-a", "honest-b", "escapes", "chatty", "hostile-html", "slow-help"} <= pages


def test_feedback_goes_on_when_nbgrader_cannot_render_one_students_notebook(graded, tmp_path):
    """An autograded notebook that nbgrader cannot read (here: bytes written over one, as a
    crashed stock grader or a disk fault might leave it): that student is named, everyone else
    gets a page, and the command says so with status 1."""
    course, _, _, _ = graded
    copy = copy_course(course, tmp_path / "course")
    shutil.rmtree(copy / "feedback", ignore_errors=True)  # pages an earlier test wrote
    broken = copy / "autograded" / "honest-b" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    broken.write_bytes(b'{"cells": [' + b"9" * 5000 + b"]}")
    done = run_verb(copy, "feedback", ASSIGNMENT)
    assert done.returncode == 1, done.stderr
    assert "could not write feedback for 1 student(s): honest-b; the others have theirs" in done.stderr
    pages = {p.parts[-3] for p in (copy / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")}
    assert "honest-b" not in pages and {"honest-a", "escapes", "chatty"} <= pages
