"""`coursekit export`: Canvas's and Moodle's gradebook import files and the per-cell table.

Each LMS file is checked against its vendor's documented layout with a sample in that layout written
out here as the fixture: the same checker (what the vendor's import page requires) must accept the
sample and coursekit's file, and coursekit's fixed columns must be the sample's.  The class is graded
by `coursekit autograde`: ada 9/9, ben 6/9 (the sample standard deviation in standardize), and cy, whose name in the
gradebook starts like a spreadsheet formula, submits nothing.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from tests.helpers import (
    ASSIGNMENT,
    CORRECT,
    COURSE_ID,
    build_template,
    coursekit,
    nbgrader_env,
    release_notebook,
    solve,
    submit,
)

SAMPLE_STD = CORRECT["standardize"].replace("X.std(axis=0)", "X.std(axis=0, ddof=1)")

# Canvas: Grades > Export gives this layout, and Grades > Import reads it back (Canvas Instructor
# Guide, "How do I import grades in the Gradebook?"): Student, ID, SIS User ID, SIS Login ID, Section,
# then "Assignment name (Canvas id)" columns; the second row is the indented "Points Possible" row.
CANVAS_SAMPLE = """\
Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (4821),Quiz 2 (4822)
    Points Possible,,,,,10.00,5.00
"Doe, Jane",11,S0001,jdoe,Biology 101,8.50,4.00
"Roe, Rick",12,S0002,rroe,Biology 101,,5.00
"""
# Moodle: Grades > Export > Plain text file gives this layout, and Grades > Import > CSV file reads
# it (Moodle docs, "Grade import"): a header row, identifier columns (Moodle maps one of them to
# user id, username, ID number or email address) and one column per grade item.
MOODLE_SAMPLE = """\
First name,Last name,ID number,Institution,Department,Email address,Assignment: Essay (Real)
Jane,Doe,S0001,,,jdoe@example.com,75.00
Rick,Roe,S0002,,,rroe@example.com,
"""
MOODLE_IDENTIFIERS = {"User ID", "Username", "ID number", "Email address"}


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def is_score(cell: str) -> bool:
    if cell == "":
        return True
    try:
        return float(cell) >= 0
    except ValueError:
        return False


def check_canvas(text: str) -> list[list[str]]:
    """What Canvas's gradebook import requires of a file; its rows."""
    rows = rows_of(text)
    header = rows[0]
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] and len(header) > 5
    points = rows[1]
    assert points[0].strip() == "Points Possible" and points[1:5] == ["", "", "", ""]
    assert all(is_score(c) and c for c in points[5:])
    for row in rows[2:]:
        assert len(row) == len(header)
        assert any(row[1:4]), f"Canvas cannot match {row} to a student (no ID, SIS User ID or SIS Login ID)"
        assert all(is_score(c) for c in row[5:]), row
    return rows


def check_moodle(text: str) -> list[list[str]]:
    """What Moodle's CSV grade import requires of a file; its rows."""
    rows = rows_of(text)
    header = rows[0]
    identifiers = [i for i, name in enumerate(header) if name in MOODLE_IDENTIFIERS]
    assert identifiers, f"no column Moodle can map to a user in {header}"
    items = [i for i, name in enumerate(header) if i not in identifiers and name not in
             {"First name", "Last name", "Institution", "Department"}]
    assert items, "no grade item column"
    for row in rows[1:]:
        assert len(row) == len(header)
        assert any(row[i] for i in identifiers), row
        assert all(is_score(row[i]) for i in items), row
    for i in identifiers:
        ids = [row[i] for row in rows[1:] if row[i]]
        assert len(ids) == len(set(ids)), f"identifier column {header[i]} repeats a value"
    return rows


@pytest.mark.parametrize("check, sample", [(check_canvas, CANVAS_SAMPLE), (check_moodle, MOODLE_SAMPLE)])
def test_the_checkers_accept_the_vendors_samples(check, sample):
    check(sample)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = build_template(tmp_path_factory.mktemp("export") / "course")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.update_or_create_student("ada", first_name="Ada", last_name="Lovelace", email="ada@example.edu",
                                    lms_user_id="4711")
        gb.update_or_create_student("ben", first_name="Ben", last_name="Okafor", email="ben@example.edu")
        gb.update_or_create_student("cy", first_name="@SUM(A1)", last_name="=HYPERLINK(\"http://x\")")
    submit(course, "ada", solve(release_notebook(course), CORRECT))
    submit(course, "ben", solve(release_notebook(course), {**CORRECT, "standardize": SAMPLE_STD}))
    coursekit(course)
    return course


def export(course: Path, fmt: str, *options: str) -> str:
    out = course / "out" / f"{fmt}.csv"
    done = subprocess.run([sys.executable, "-m", "coursekit", "export", ASSIGNMENT, "--format", fmt,
                           "--output", str(out), *options], cwd=course, env=nbgrader_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out.read_text(encoding="utf-8")


def test_the_canvas_file_has_canvass_layout_and_each_score(course):
    rows = check_canvas(export(course, "canvas", "--column", "Feature scaling (4823)"))
    assert rows[0] == rows_of(CANVAS_SAMPLE)[0][:5] + ["Feature scaling (4823)"]
    assert rows[1] == rows_of(CANVAS_SAMPLE)[1][:5] + ["9.0"]
    assert rows[2:] == [["Lovelace, Ada", "4711", "", "ada", "", "9.0"],
                        ["Okafor, Ben", "", "", "ben", "", "6.0"],
                        ["'=HYPERLINK(\"http://x\"), @SUM(A1)", "", "", "cy", "", ""]]


def test_the_moodle_file_has_moodles_layout_and_each_score(course):
    rows = check_moodle(export(course, "moodle"))
    assert rows == [["Username", "Email address", ASSIGNMENT],
                    ["ada", "ada@example.edu", "9.0"], ["ben", "ben@example.edu", "6.0"], ["cy", "", ""]]


def test_the_per_cell_table_has_each_cells_score_and_the_total(course):
    table = rows_of(export(course, "csv"))
    assert table[0][0] == "student" and table[0][-3:] == ["total", "max_score", "note"]
    by_student = {row[0]: row for row in table[1:]}
    assert (by_student["ada"][-3], by_student["ben"][-3], by_student["cy"][-3]) == ("9.0", "6.0", "")
    assert by_student["ben"][table[0].index("test_standardize_public")] == "0.0"
