"""coursekit as a package someone else installs: `python -m build` makes an sdist and a wheel from
the repository's files, a fresh virtual environment installs the wheel (with its declared
dependencies only, from the package index), and its `coursekit` command grades the general
course (tests/general_course/) with the scores worked out by hand.  A missing dependency
declaration, a module or data file left out of the distribution, or an import of something only
this repository has fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import (
    COURSE_ID,
    EXPECTED,
    GENERAL_COURSE,
    REPOSITORY,
    TEXTSTATS,
    generate_assignment,
    gradebook_grades,
    nbgrader_env,
    new_course,
    write_students,
)

# Installing nbgrader and its dependencies into an empty environment takes a minute or more.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# What the distribution is built from: the package and the files pyproject.toml names.
DISTRIBUTION_FILES = ("pyproject.toml", "LICENSE", "coursekit")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh virtual environment holding only the built wheel and its dependencies."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"  # a copy: building writes egg-info and build/ next to pyproject.toml
    source.mkdir()
    for name in DISTRIBUTION_FILES:
        if (REPOSITORY / name).is_dir():
            shutil.copytree(REPOSITORY / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPOSITORY / name, source / name)
    dist = base / "dist"
    # Isolated, as anyone builds it: the backend pyproject.toml asks for comes from the package index.
    _check([sys.executable, "-m", "build", "--outdir", str(dist), str(source)])
    (wheel,) = dist.glob("coursekit-*.whl")
    assert len(list(dist.glob("coursekit-*.tar.gz"))) == 1
    env = base / "venv"
    venv.create(env, with_pip=True)
    _check([str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    return env / "bin"


def _check(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_the_installed_package_is_not_this_checkout(installed):
    where = subprocess.run([installed / "python", "-c", "import coursekit; print(coursekit.__file__)"],
                           cwd="/", capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(installed.parent) and not Path(where).is_relative_to(REPOSITORY)


def test_the_installed_command_grades_the_general_course(installed, tmp_path):
    course = new_course(tmp_path / "course", ("nbgrader_config.py", "source"), origin=GENERAL_COURSE)
    generate_assignment(course, "--log-level=WARN", assignment=TEXTSTATS)
    write_students(course)
    env = nbgrader_env()
    env["PATH"] = f"{installed}{os.pathsep}{env['PATH']}"  # its coursekit, alembic and jupyter first
    done = subprocess.run([installed / "coursekit", "autograde", TEXTSTATS], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    grades = {key: score for key, (score, _) in gradebook_grades(course, TEXTSTATS, COURSE_ID).items()}
    assert grades == {(student, cell): score for student, cells in EXPECTED.items() for cell, score in cells.items()}
