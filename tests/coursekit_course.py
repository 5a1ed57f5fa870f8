"""Throw-away copies of the course for the coursekit tests, and ways to read their results.

A template course (config, master, release, a fresh gradebook made by the real
`nbgrader generate_assignment`) is built once per session; each test grades in its own copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nbgrader.api import Gradebook

from course_copy import ASSIGNMENT, ROOT, generate_assignment, nbgrader_env, new_course
from student_work import CORRECT, solve

sys.path.insert(0, str(ROOT / "bench"))
import fuzz  # noqa: E402, F401  (the differential generator, built on make_class; tests import it from here)
import make_class  # noqa: E402  (the class generator under test is also the tests' supplier of work)


def build_template(folder: Path) -> Path:
    """A course with config, master, release and a fresh gradebook, by the real generate_assignment."""
    generate_assignment(new_course(folder), "--force", "--log-level=WARN")
    return folder


_TEMPLATE: list[Path] = []


def shared_template(tmp_path_factory) -> Path:
    """One template course for the whole test session (generate_assignment takes seconds)."""
    if not _TEMPLATE:
        _TEMPLATE.append(build_template(tmp_path_factory.mktemp("coursekit") / "template"))
    return _TEMPLATE[0]


def submit(course: Path, student: str, notebook: dict | bytes, timestamp: str | None = make_class.TIMESTAMP,
           assignment: str = ASSIGNMENT) -> Path:
    """Place a submission as the exchange would: submitted/<student>/<assignment>/<assignment>.ipynb."""
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    path.write_bytes(notebook if isinstance(notebook, bytes) else json.dumps(notebook).encode())
    if timestamp:
        (folder / "timestamp.txt").write_text(timestamp + "\n")
    return path


def release_notebook() -> dict:
    return json.loads((ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text(encoding="utf-8"))


def run_coursekit(course: Path, *args: str, timeout: float = 600, wrapper: tuple[str, ...] = (),
                  env: dict[str, str] | None = None, assignment: str = ASSIGNMENT) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m coursekit autograde <assignment> --json ...`), under `wrapper`
    (e.g. setpriv with its options), in `env` (default: nbgrader_env())."""
    return subprocess.run([*wrapper, sys.executable, "-m", "coursekit", "autograde", assignment, "--json", *args],
                          cwd=course, env=env or nbgrader_env(), capture_output=True, text=True, timeout=timeout)


def coursekit(course: Path, *args: str, check: bool = True, timeout: float = 600,
              wrapper: tuple[str, ...] = (), env: dict[str, str] | None = None,
              assignment: str = ASSIGNMENT) -> list[dict]:
    """The JSON lines of `run_coursekit`; with `check`, fail unless it exits 0."""
    proc = run_coursekit(course, *args, timeout=timeout, wrapper=wrapper, env=env, assignment=assignment)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def gradebook_grades(course: Path, assignment: str = ASSIGNMENT, course_id: str = "weight-init",
                     url: str | None = None) -> dict[tuple[str, str], tuple[float | None, bool]]:
    """{(student, grade cell): (auto_score, needs_manual_grade)} for every submission in the
    course's gradebook (or the one at `url`); grade ids are unique across an assignment's notebooks."""
    with Gradebook(url or f"sqlite:///{course / 'gradebook.db'}", course_id) as gb:
        return {(sub.student.id, grade.name): (grade.auto_score, grade.needs_manual_grade)
                for sub in gb.find_assignment(assignment).submissions
                for nb in sub.notebooks for grade in nb.grades}


def gradebook_scores(course: Path, url: str | None = None,
                     assignment: str = ASSIGNMENT) -> dict[tuple[str, str], float | None]:
    """{(student, grade cell): auto_score} for every submission in the course's gradebook (or at `url`)."""
    return {key: score for key, (score, _) in gradebook_grades(course, assignment, url=url).items()}


FULL = {"zeros": 3.0, "random": 3.0, "he": 3.0}  # points of each exercise


def grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def index_of(nb: dict, gid: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == gid)


def solved() -> dict:
    """The release notebook with all three exercises solved correctly."""
    return solve(release_notebook(), CORRECT)


def exercise_scores(result: dict) -> dict[str, float]:
    """{exercise: points} of one `--json` result line."""
    cells = result["cells"]
    return {ex: cells[f"test_{ex}_public"]["score"] + cells[f"test_{ex}_hidden"]["score"] for ex in FULL}


def expected_scores(manifest: dict) -> dict[tuple[str, str], float]:
    return {(student, cell): score for student, entry in manifest.items()
            for cell, score in entry["expected"].items()}
