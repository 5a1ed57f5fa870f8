"""Course folders for the tests and the benchmarks: copy a course, let the real nbgrader generate
it, copy the result for each run, and read the grades back from its gradebook.

Both tests/ (through tests/helpers.py) and bench/ import this module, so that neither imports the
other and a benchmark needs nothing the tests need (pytest, Playwright).  It does not import
coursekit: what it reads, it reads through nbgrader's own API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.api import Gradebook

from scripts.course import ASSIGNMENT, ROOT

VENV_BIN = Path(sys.executable).parent
COURSE_FILES = ("nbgrader_config.py", "hide_hidden_tests.py", "source")
LEFTOVERS = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")


def nbgrader_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses.

    The venv's bin/ goes first on PATH (nbgrader shells out to `alembic`), and the COURSEKIT_GRADEBOOK
    and COURSEKIT_EXCHANGE overrides are dropped: a course copy must never write to the developer's
    gradebook or exchange.  A test that wants them sets them itself.
    """
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("COURSEKIT_GRADEBOOK", None)
    env.pop("COURSEKIT_EXCHANGE", None)
    return env


def new_course(dest: Path, files: tuple[str, ...] = COURSE_FILES, origin: Path = ROOT) -> Path:
    """A course folder at ``dest`` holding copies of ``files`` (files or folders) from ``origin``."""
    dest.mkdir(parents=True)
    for name in files:
        src = origin / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=LEFTOVERS)
        else:
            shutil.copy(src, dest / name)
    return dest


def generate_assignment(course: Path, *options: str, env: dict[str, str] | None = None,
                        assignment: str = ASSIGNMENT) -> None:
    """Run the real `nbgrader generate_assignment ASSIGNMENT` in ``course``; fail with its output."""
    args = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, *options]
    done = subprocess.run(args, cwd=course, env=env or nbgrader_env(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"generate_assignment failed in {course}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build_template(folder: Path) -> Path:
    """A course with config, master, release and a fresh gradebook, by the real generate_assignment."""
    generate_assignment(new_course(folder), "--force", "--log-level=WARN")
    return folder


def copy_course(template: Path, dest: Path) -> Path:
    """A private copy of a generated course (its gradebook included), for one test to change."""
    shutil.copytree(template, dest)
    return dest


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


def expected_scores(manifest: dict) -> dict[tuple[str, str], float]:
    """{(student, test cell): points} that a generated class's manifest worked out by hand."""
    return {(student, cell): score for student, entry in manifest.items()
            for cell, score in entry["expected"].items()}
