"""Shared fixtures: the environment nbgrader needs, the tool's fixture course (the general course's
scaling assignment, generated once) and the generated classes copied from it (helpers live in
tests/helpers.py).  State lives in fixtures, not in module globals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from scripts.pg_server import PostgresServer, PostgresUnavailable
from tests.helpers import build_template, copy_course, generate_class, nbgrader_env


@pytest.fixture(scope="session")
def course_env() -> dict[str, str]:
    """Environment for nbgrader subprocesses (see helpers.nbgrader_env)."""
    return nbgrader_env()


@pytest.fixture(scope="session")
def template_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture course for the whole session (helpers.build_template): the scaling assignment's
    config, master, release and a fresh gradebook (generate_assignment takes seconds).  Tests grade
    in copies of it (helpers.copy_course), never in it."""
    return build_template(tmp_path_factory.mktemp("coursekit") / "template")


@pytest.fixture(scope="session")
def generated_class(tmp_path_factory: pytest.TempPathFactory,
                    template_course: Path) -> Callable[[str, int], tuple[Path, Path, dict]]:
    """``generated_class(name, size)``: (base folder, course copy, manifest), a private copy of the
    template course holding a class of ``size`` students (helpers.generate_class), with the scores
    worked out by hand for each."""
    def generate(name: str, size: int) -> tuple[Path, Path, dict]:
        base = tmp_path_factory.mktemp(name)
        course = copy_course(template_course, base / "template")
        return base, course, generate_class(course, size)
    return generate


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server (Debian's, in a temporary folder) for the session; each test that
    uses it makes its own database (`create_database`)."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:  # it says what to install
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
