"""A whole class through nbgrader's exchange, with the real CLI: release, fetch, solve, submit,
collect, autograde, feedback back to each student.

One instructor (a temporary copy of the course) and four students, each with their own HOME and
working folder and the student configuration from jupyterhub/.  All run as this OS user, so the
students name themselves with `--student` (on a hub the exchange takes the name from the account);
the permission test then checks, as an unprivileged account, what another student could see.

    ada  solves everything                          -> 9 / 9
    ben  submits a full solution, then a worse one  -> graded on the second: 6 / 9 (Xavier for He)
    cy   submits the stubs untouched                -> 0 / 9
    dee  solves everything after the due date       -> 9 / 9, marked late
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from scripts.course import ASSIGNMENT, ROOT
from scripts.courses import new_course
from scripts.student_work import CORRECT, solve_notebook

COURSE_ID = "weight-init"
STUDENTS = ["ada", "ben", "cy", "dee"]
pytestmark = pytest.mark.slow  # about a minute of the real nbgrader CLI; `make test-quick` skips it

NOBODY = 65534  # an unprivileged account that is neither instructor nor any student
# Environment that would make a student read someone else's Jupyter folders.
PERSONAL_VARS = ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "XDG_DATA_HOME",
                 "XDG_CONFIG_HOME", "JUPYTERHUB_USER", "COURSEKIT_GRADEBOOK"]


@dataclass
class World:
    """A temporary hub: exchange, instructor course folder, one home per student."""

    base: Path
    env: dict[str, str]
    submitted_at: dict[str, list[str]] = field(default_factory=dict)

    @property
    def exchange(self) -> Path:
        return self.base / "exchange"

    @property
    def course(self) -> Path:
        return self.base / "instructor" / "course"

    @property
    def gradebook_url(self) -> str:
        return f"sqlite:///{self.course / 'gradebook.db'}"

    def home(self, student: str) -> Path:
        return self.base / "home" / student

    def run(self, args: list[str], cwd: Path, home: Path, **extra_env: str) -> str:
        env = {k: v for k, v in self.env.items() if k not in PERSONAL_VARS}
        env.update(HOME=str(home), COURSEKIT_EXCHANGE=str(self.exchange), **extra_env)
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def instructor(self, *args: str) -> str:
        return self.run(["nbgrader", *args], self.course, self.course.parent,
                        COURSEKIT_GRADEBOOK=self.gradebook_url)

    def student(self, name: str, *args: str) -> str:
        return self.run(["nbgrader", *args, f"--student={name}"], self.home(name), self.home(name))

    def submit(self, name: str) -> None:
        log = self.student(name, "submit", ASSIGNMENT)
        (timestamp,) = re.findall(rf"Submitted as: {COURSE_ID} {ASSIGNMENT} (.+)", log)
        self.submitted_at.setdefault(name, []).append(timestamp.strip())

    def notebook(self, student: str) -> Path:
        return self.home(student) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


@pytest.fixture(scope="module")
def world(course_env) -> Iterator[World]:
    # Not under pytest's tmp_path: that is private to this account, and the permission test needs an
    # unprivileged account to reach the exchange.
    base = Path(tempfile.mkdtemp(prefix="coursekit-hub-"))
    base.chmod(0o755)
    try:
        yield build_class(World(base, course_env))
    finally:
        shutil.rmtree(base)


def build_class(w: World) -> World:
    """Run the semester: every step of the exchange, in the order a class goes through it."""
    subprocess.run(["make", "-s", "-C", str(ROOT), "exchange", f"EXCHANGE={w.exchange}"], check=True)
    new_course(w.course)
    w.instructor("generate_assignment", ASSIGNMENT)
    w.instructor("release_assignment", ASSIGNMENT)

    for name in STUDENTS:
        config = w.home(name) / ".jupyter" / "nbgrader_config.py"
        config.parent.mkdir(parents=True)
        shutil.copy(ROOT / "jupyterhub" / "student" / "nbgrader_config.py", config)
        w.home(name).chmod(0o700)
        w.student(name, "fetch_assignment", ASSIGNMENT)

    solve_notebook(w.notebook("ada"), CORRECT, signature="work of ada")
    w.submit("ada")
    solve_notebook(w.notebook("ben"), CORRECT, signature="work of ben")
    w.submit("ben")
    # Second thoughts, for the worse: Xavier's sqrt(1 / n) where He's sqrt(2 / n) is asked for.
    ben = w.notebook("ben")
    ben.write_text(ben.read_text().replace("np.sqrt(2 / layers_dims", "np.sqrt(1 / layers_dims"))
    w.submit("ben")
    w.submit("cy")

    # The deadline passes between the last on-time submission and dee's.
    due = datetime.now(timezone.utc).isoformat()
    w.instructor("db", "assignment", "add", ASSIGNMENT, f"--duedate={due}")
    solve_notebook(w.notebook("dee"), CORRECT, signature="work of dee")
    w.submit("dee")

    w.instructor("collect", ASSIGNMENT)
    w.instructor("autograde", ASSIGNMENT)
    w.instructor("generate_feedback", ASSIGNMENT)
    w.instructor("release_feedback", ASSIGNMENT)
    for name in STUDENTS:
        w.student(name, "fetch_feedback", ASSIGNMENT)
    return w


def submission(w: World, student: str):
    with Gradebook(w.gradebook_url, COURSE_ID) as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        return sub.score, sub.max_score, sub.total_seconds_late


def fetched_feedback(w: World, student: str) -> list[Path]:
    return sorted((w.home(student) / ASSIGNMENT / "feedback").rglob("*.html"))


@pytest.mark.parametrize("student, points", [("ada", 9), ("ben", 6), ("cy", 0), ("dee", 9)])
def test_each_student_is_graded_on_their_own_work(world, student, points):
    score, max_score, _ = submission(world, student)
    assert (score, max_score) == (points, 9)


def test_a_second_submission_replaces_the_first(world):
    first, second = world.submitted_at["ben"]
    collected = world.course / "submitted" / "ben" / ASSIGNMENT
    assert (collected / "timestamp.txt").read_text().strip() == second != first
    assert "np.sqrt(1 / layers_dims[l - 1])" in (collected / f"{ASSIGNMENT}.ipynb").read_text()


@pytest.mark.parametrize("student, late", [("ada", False), ("ben", False), ("cy", False), ("dee", True)])
def test_only_the_submission_after_the_due_date_is_marked_late(world, student, late):
    *_, seconds_late = submission(world, student)
    assert (seconds_late > 0) == late


@pytest.mark.parametrize("student", STUDENTS)
def test_each_student_fetches_only_their_own_feedback(world, student):
    (html,) = fetched_feedback(world, student)
    assert html.parent.name == world.submitted_at[student][-1]  # the graded submission
    text = html.read_text(encoding="utf-8")
    signed = {name for name in STUDENTS if f"work of {name}" in text}
    assert signed == ({student} if student in {"ada", "ben", "dee"} else set())


def test_feedback_shows_the_score(world):
    expected = {"ada": "9.0", "ben": "6.0", "cy": "0.0", "dee": "9.0"}
    for student, points in expected.items():
        text = fetched_feedback(world, student)[0].read_text(encoding="utf-8")
        assert re.search(rf"Score:\s*{re.escape(points)}\s*/\s*9\.0", text), student


def as_nobody(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                          text=True, timeout=30)


def test_the_exchange_hides_submissions_and_feedback_from_other_accounts(world):
    course = world.exchange / COURSE_ID
    mode = {name: stat.S_IMODE((course / name).stat().st_mode) for name in ["inbound", "feedback"]}
    assert stat.S_IMODE(world.exchange.stat().st_mode) == 0o1777, "sticky: nobody can move the course"
    assert mode["inbound"] & 0o007 == 0o003, "others may add submissions but not list them"
    assert mode["feedback"] & 0o007 == 0o001, "others may open a feedback file they can name, not list"
    for folder in (course / "inbound").iterdir():
        # student+assignment+timestamp+random: the random part keeps the folder name unguessable
        assert len(folder.name.split("+")) == 4 and len(folder.name.split("+")[3]) >= 12, folder.name
    if os.geteuid() != 0:
        pytest.skip("checking as another account needs root to switch to it")
    assert as_nobody("ls", str(course / "outbound" / ASSIGNMENT)).returncode == 0  # the release is public
    assert as_nobody("ls", str(course / "inbound")).returncode != 0
    assert as_nobody("ls", str(course / "feedback")).returncode != 0
    assert as_nobody("ls", str(world.home("ada"))).returncode != 0
    assert as_nobody("mv", str(course), str(world.exchange / "hijacked")).returncode != 0
