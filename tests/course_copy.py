"""Temporary courses: the one place tests (and bench/) build, generate and copy a course folder.

A course is a folder with nbgrader_config.py and source/ (plus whatever else a test needs); nbgrader
runs in it with `nbgrader_env()`, so it uses the course's own gradebook and the default exchange.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "initialization"
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
    assert done.returncode == 0, f"generate_assignment failed in {course}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def copy_course(template: Path, dest: Path) -> Path:
    """A private copy of a generated course (its gradebook included), for one test to change."""
    shutil.copytree(template, dest)
    return dest
