"""Shared fixtures: paths of the course and the environment nbgrader needs."""

from __future__ import annotations

import sys

import pytest

from course_copy import ASSIGNMENT, ROOT, nbgrader_env

MASTER = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
# Tests import the course's own modules (init_utils, public_tests, scripts.run_master, coursekit).
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def course_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses (see course_copy.nbgrader_env)."""
    return nbgrader_env()
