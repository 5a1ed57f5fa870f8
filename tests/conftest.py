"""Shared fixtures: the environment nbgrader needs and the template course (helpers live in
tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import build_template, nbgrader_env


@pytest.fixture(scope="session")
def course_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses (see helpers.nbgrader_env)."""
    return nbgrader_env()


@pytest.fixture(scope="session")
def template_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One template course for the whole session: config, master, release and a fresh gradebook
    (generate_assignment takes seconds).  Tests grade in copies of it (helpers.copy_course), never in it."""
    return build_template(tmp_path_factory.mktemp("coursekit") / "template")
