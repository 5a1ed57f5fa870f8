"""`coursekit serve` without a hub: the real nbgrader CLI submits and fetches feedback through a real
exchange, the service runs as its own process, and the test kills it with SIGKILL mid-burst.

The semester, in order (the `semester` fixture; the tests then check what it recorded):
    ada  solves everything                 -> early page: public tests 3 / 3, hidden ones "graded after"
    ben  the sample std in standardize  -> early page 2 / 3; at the due date 6 / 9
    cy   submits three times (limit 2/hour)  -> the third is held, its page says when the next is graded
    dee  submits after the due date          -> graded at once, final page, marked late
    burst: BURST students submit while the service is killed with SIGKILL and started again
    the due date moves into the past       -> every last submission graded again, full pages
Each runs on SQLite and on a PostgreSQL gradebook.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from coursekit.classroom import solve_notebook
from tests.helpers import (
    ANSWERS,
    ASSIGNMENT,
    CORRECT,
    COURSE_ID,
    EXPECTED,
    FIXTURE_CONFIG,
    FIXTURE_FILES,
    GENERAL_COURSE,
    NOTEBOOKS,
    TEXTSTATS,
    HubAccounts,
    answer_textstats,
    gradebook_scores,
    leaked_hidden_text,
    nbgrader_env,
    new_course,
)

# standardize with the sample standard deviation: both of its tests fail
SAMPLE_STD = {**CORRECT, "standardize": CORRECT["standardize"].replace("X.std(axis=0)", "X.std(axis=0, ddof=1)")}
BURST = 6
PER_HOUR = 2
SCORE = re.compile(r"\(Score: ([\d.]+) / ([\d.]+)\)")
WAIT = 240.0  # seconds a page may take on a loaded 2-core machine (correctness, not speed)


@dataclass
class World:
    base: Path
    env: dict[str, str]
    gradebook_url: str
    service: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)
    early: dict[str, str] = field(default_factory=dict)  # student -> page text before the due date
    final: dict[str, str] = field(default_factory=dict)
    held: str = ""
    burst: list[str] = field(default_factory=list)
    kills: list[tuple[int, int]] = field(default_factory=list)  # (submissions waiting, pages released) at each

    @property
    def exchange(self) -> Path:
        return self.base / "exchange"

    @property
    def course(self) -> Path:
        return self.base / "course"

    @property
    def journal(self) -> Path:
        found = list(self.course.glob("*.serve.sqlite")) + list(self.course.glob("serve.sqlite"))
        return found[0]

    def home(self, student: str) -> Path:
        return self.base / "home" / student

    def run(self, args: list[str], cwd: Path, **env: str) -> str:
        done = subprocess.run(args, cwd=cwd, env={**self.env, **env}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def instructor(self, *args: str) -> str:
        return self.run(["nbgrader", *args], self.course)

    def student(self, name: str, *args: str) -> str:
        return self.run(["nbgrader", *args, f"--student={name}"], self.home(name), HOME=str(self.home(name)))

    def join(self, name: str) -> None:
        config = self.home(name) / ".jupyter" / "nbgrader_config.py"
        config.parent.mkdir(parents=True)
        # what a student's own configuration holds: the course id and the exchange
        config.write_text(f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
                          f"c.Exchange.root = {str(self.exchange)!r}\n")
        self.student(name, "fetch_assignment", ASSIGNMENT)

    def submit(self, name: str, bodies: dict[str, str] | None) -> str:
        """Fill in `bodies` (None: submit the notebook as it is again), then `nbgrader submit`."""
        if bodies is not None:
            solve_notebook(self.home(name) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", bodies, signature=f"work of {name}")
        (timestamp,) = re.findall(rf"Submitted as: {COURSE_ID} {ASSIGNMENT} (.+)", self.student(name, "submit", ASSIGNMENT))
        return timestamp.strip()

    def start(self) -> None:
        with (self.base / "serve.log").open("a") as out:
            self.service = subprocess.Popen([sys.executable, "-m", "coursekit", "serve"], cwd=self.course,
                                            env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.service is not None
        self.service.send_signal(signal.SIGKILL)
        self.service.wait()

    def pages(self, name: str, timestamp: str) -> str | None:
        """The feedback the student fetches for the submission at `timestamp`, or None."""
        self.student(name, "fetch_feedback", ASSIGNMENT)
        page = self.home(name) / ASSIGNMENT / "feedback" / timestamp / f"{ASSIGNMENT}.html"
        return page.read_text(encoding="utf-8") if page.exists() else None

    def wait_for_page(self, name: str, timestamp: str, has: str = "") -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.service is not None and self.service.poll() is None, self.service_log()
            text = self.pages(name, timestamp)
            if text is not None and has in text:
                return text
            time.sleep(0.5)
        raise AssertionError(f"no feedback with {has!r} for {name} at {timestamp}:\n{self.service_log()}")

    def service_log(self) -> str:
        return (self.base / "serve.log").read_text()[-4000:]

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.journal) as db:
            return db.execute(sql).fetchall()


def open_course(w: World, assignment: str, config: str, files: tuple[str, ...] = FIXTURE_FILES) -> None:
    """The exchange, the general course's `files` copied with `config` appended, `assignment`
    released and due in a week."""
    w.exchange.mkdir(mode=0o1777)
    w.exchange.chmod(0o1777)  # as `make exchange` makes it: anyone may write, only the owner removes
    new_course(w.course, files)
    with (w.course / "nbgrader_config.py").open("a") as config_file:
        config_file.write(f"\n{config}\n")
    w.instructor("generate_assignment", assignment)
    w.instructor("release_assignment", assignment)
    due = (datetime.now(timezone.utc) + timedelta(days=7)).isoformat()
    w.instructor("db", "assignment", "add", assignment, f"--duedate={due}")


def build(world: World) -> World:
    w = world
    open_course(w, ASSIGNMENT, FIXTURE_CONFIG + f"\nc.Serve.per_hour = {PER_HOUR}")
    students = ["ada", "ben", "cy", "dee"] + [f"s{i:02d}" for i in range(BURST)]
    for name in students:
        w.join(name)
    w.start()

    at = {"ada": w.submit("ada", CORRECT), "ben": w.submit("ben", SAMPLE_STD)}
    w.early = {name: w.wait_for_page(name, stamp) for name, stamp in at.items()}

    cy = [w.submit("cy", CORRECT if i == 0 else None) for i in range(PER_HOUR + 1)]
    w.wait_for_page("cy", cy[-2])
    w.held = w.wait_for_page("cy", cy[-1])

    # A burst: every student submits at once; the service is killed with SIGKILL while submissions
    # wait to be graded, started again, and killed again once it is releasing pages.
    for i, name in enumerate(students[4:]):
        solve_notebook(w.home(name) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", CORRECT if i % 2 else {},
                       signature=f"work of {name}")
    submits = {name: subprocess.Popen(["nbgrader", "submit", ASSIGNMENT, f"--student={name}"], cwd=w.home(name),
                                      env={**w.env, "HOME": str(w.home(name))}, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
               for name in students[4:]}
    w.burst = list(submits)
    deadline = time.monotonic() + WAIT
    while len(w.kills) < 2 and time.monotonic() < deadline:
        states = [s for (s,) in w.rows("SELECT state FROM submission WHERE student LIKE 's%'")]
        released = w.rows("SELECT count(*) FROM feedback f JOIN submission s ON s.name = f.name "
                          "WHERE s.student LIKE 's%' AND f.released_at IS NOT NULL")[0][0]
        if "waiting" in states and (not w.kills or released > w.kills[-1][1]):
            w.kill()
            w.kills.append((states.count("waiting"), released))
            w.start()
        elif len(states) == BURST and "waiting" not in states:
            break  # all graded: nothing left to kill it in the middle of
        time.sleep(0.02)
    burst = {}
    for name, submit in submits.items():
        out, _ = submit.communicate(timeout=300)
        assert submit.returncode == 0, out
        (burst[name],) = [t.strip() for t in re.findall(rf"Submitted as: {COURSE_ID} {ASSIGNMENT} (.+)", out)]
    for name, stamp in burst.items():
        w.wait_for_page(name, stamp)

    # The due date passes: the test moves it to this moment, after every submission so far (a fixed
    # distance into the past would make a quick machine's last submissions late) and before dee's.
    past = datetime.now(timezone.utc).isoformat()
    w.instructor("db", "assignment", "add", ASSIGNMENT, f"--duedate={past}")
    w.final = {name: w.wait_for_page(name, stamp, "final feedback") for name, stamp in at.items()}
    w.final["cy"] = w.wait_for_page("cy", cy[-1], "final feedback")
    w.final["dee"] = w.wait_for_page("dee", w.submit("dee", CORRECT), "final feedback")  # after the due date
    deadline = time.monotonic() + WAIT
    while not w.rows("SELECT 1 FROM final") and time.monotonic() < deadline:
        time.sleep(0.2)
    return w


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def semester(request, course_env) -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="coursekit-serve-"))
    base.chmod(0o755)
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'course' / 'gradebook.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"serve_{int(time.time() * 1000) % 10**9}")
    env = {**nbgrader_env(), "COURSEKIT_EXCHANGE": str(base / "exchange"), "COURSEKIT_GRADEBOOK": url}
    world = World(base, env, url)
    try:
        yield build(world)
    finally:
        if world.service is not None and world.service.poll() is None:
            world.service.send_signal(signal.SIGTERM)
            try:
                world.service.wait(timeout=60)
            except subprocess.TimeoutExpired:
                world.kill()
        shutil.rmtree(base, ignore_errors=True)


def score(page: str) -> tuple[float, float]:
    found = SCORE.search(page)
    assert found, page[:2000]
    return float(found[1]), float(found[2])


def test_before_the_due_date_the_page_shows_public_results_and_no_hidden_ones(semester):
    assert score(semester.early["ada"]) == (3.0, 3.0)
    assert score(semester.early["ben"]) == (2.0, 3.0)  # the public standardize test fails
    for page in semester.early.values():
        assert page.count("graded after the due date") >= 3
        assert not leaked_hidden_text(page)
        hidden_rows = re.findall(r"<tr>\s*<td>test_\w+_hidden.*?</tr>", page, re.S)
        assert len(hidden_rows) == 3 and not any("passed" in r or "failed" in r for r in hidden_rows)
    assert "work of ada" in semester.early["ada"] and "work of ben" not in semester.early["ada"]


def test_after_the_due_date_the_final_page_shows_every_test(semester):
    assert score(semester.final["ada"]) == (9.0, 9.0)
    assert score(semester.final["ben"]) == (6.0, 9.0)
    for page in semester.final.values():
        assert "graded after the due date" not in page
        assert not leaked_hidden_text(page)


def test_the_gradebook_holds_each_students_last_submission(semester):
    expected = {"ada": 9, "ben": 6, "cy": 9, "dee": 9, **{n: (9 if i % 2 else 0) for i, n in enumerate(semester.burst)}}
    with Gradebook(semester.gradebook_url, COURSE_ID) as gb:
        got = {s: gb.find_submission(ASSIGNMENT, s).score for s in expected}
    assert got == expected


def test_a_submission_after_the_due_date_gets_its_final_page_and_is_marked_late(semester):
    assert score(semester.final["dee"]) == (9.0, 9.0)
    with Gradebook(semester.gradebook_url, COURSE_ID) as gb:
        late = {s: gb.find_submission(ASSIGNMENT, s).total_seconds_late for s in ("ada", "dee")}
    assert late["ada"] == 0 and late["dee"] > 0, late


def test_over_the_hourly_limit_a_submission_is_kept_and_its_page_says_when_the_next_is_graded(semester):
    assert f"You have had {PER_HOUR} submission(s) graded in the last hour" in semester.held
    assert re.search(r"after \d\d:\d\d UTC will be graded at once", semester.held)
    assert "Score" not in semester.held
    assert score(semester.final["cy"]) == (9.0, 9.0)  # graded at the due date, being cy's last


def test_after_sigkill_and_restart_every_submission_is_released_once(semester):
    assert semester.kills and semester.kills[0][0] > 0, "the service was never killed with work waiting"
    rows = semester.rows("SELECT s.name, s.state, count(f.phase) FROM submission s "
                         "LEFT JOIN feedback f ON f.name = s.name AND f.phase = 'early' "
                         "WHERE s.student LIKE 's%' GROUP BY s.name")
    assert len(rows) == BURST
    assert all(state == "graded" and pages == 1 for _, state, pages in rows), rows
    assert not semester.rows("SELECT * FROM feedback WHERE released_at IS NULL")
    assert not semester.rows("SELECT * FROM submission WHERE state IN ('waiting', 'failed')")


def test_status_reports_the_queue_the_grades_and_the_latency(semester):
    out = subprocess.run([sys.executable, "-m", "coursekit", "status"], cwd=semester.course, env=semester.env,
                         capture_output=True, text=True, check=True).stdout
    assert "queue: 0 waiting" in out
    assert re.search(r"graded: \d+, held over the hourly limit: 0, failed: 0", out), out
    assert re.search(r"submit-to-feedback \(all\): p50 [\d.]+ s, p95 [\d.]+ s, max [\d.]+ s over \d+", out)
    assert json.dumps(out)  # printable


# --- the page and the status report, without a service ---------------------------------------------

def test_the_page_escapes_student_text_and_masks_hidden_tests():
    from coursekit.feedback import shown_tests
    from coursekit.service.page import PageData, render

    tests = shown_tests({"pub": 0.0, "hid": 0.0}, {"pub": 1.0, "hid": 2.0},
                        {"pub": "<img src=x onerror=alert(1)>", "hid": "AssertionError: secret 0.123456789\nmore"},
                        {"hid"}, show_hidden=False)
    page = render(PageData("<b>eve</b>", ASSIGNMENT, ASSIGNMENT, "now", 0.0, tests,
                           [("answer", "</pre><script>alert(1)</script>")])).decode()
    assert "<script>" not in page and "<img" not in page and "<b>eve" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "secret" not in page and "(Score: 0.0 / 1.0)" in page
    full = shown_tests({"hid": 0.0}, {"hid": 2.0}, {"hid": "AssertionError: secret 1\nexpected 0.123456789"},
                       {"hid"}, show_hidden=True)
    assert [t.message for t in full] == ["AssertionError: secret 1"]  # first line only


def test_status_escapes_control_characters_a_reason_may_hold():
    from coursekit.service.status import percentile, safe

    assert safe("bad\x1b[2J\r\nline") == "bad\\x1b[2J\\x0d\\x0aline"
    assert [percentile([3.0, 1.0, 2.0, 4.0], q) for q in (50, 95, 100)] == [2.0, 4.0, 4.0]


def process_tree(pid: int) -> list[int]:
    """The descendants of a process, from /proc (pgrep -P, recursively)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [d for c in map(int, children) for d in [c, *process_tree(c)]]


def test_grading_workers_and_their_sandboxes_end_when_the_grader_is_killed():
    """A service killed with SIGKILL runs no clean-up; its workers (and their zygotes) lived on for
    hours before pool workers asked the kernel to end them with their grader (PR_SET_PDEATHSIG)."""
    code = ("from coursekit import pipeline\nfrom coursekit.pool import LocalPool\nimport time\n"
            "pool = LocalPool(2, pipeline.start_pool_worker, ((), False), task_seconds=60)\n"
            "while not all(s.ready for s in pool._slots):\n    pool.step(0.1)\n"
            "print('ready', flush=True)\ntime.sleep(300)\n")
    grader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=nbgrader_env())
    try:
        assert grader.stdout is not None and grader.stdout.readline().strip() == "ready"
        family = process_tree(grader.pid)
        assert len(family) >= 4  # two workers, each with its sandbox zygote
    finally:
        grader.kill()
        grader.communicate()
    deadline = time.monotonic() + 30
    while [p for p in family if Path(f"/proc/{p}").exists()] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in family if Path(f"/proc/{p}").exists()]


# --- an assignment of two notebooks, and inbound folders named to escape submitted/ ----------------
# tests/general_course's textstats: words.ipynb and stats.ipynb, graded and released per notebook.
# Points of each test cell, read by hand from the master; the public ones hold no hidden test.
TEXTSTATS_POINTS = {"words": {"test_tokenize": 1, "test_word_counts": 2, "test_word_counts_uses_tokenize": 1,
                              "test_top_words": 2},
                    "stats": {"test_mean": 1, "test_mean_range": 1, "test_variance": 2, "test_sample_std": 1}}
TEXTSTATS_PUBLIC = {"test_tokenize", "test_word_counts_uses_tokenize", "test_mean", "test_mean_range", "test_sample_std"}
TEXTSTATS_STUDENTS = ("solved", "partial")
# Folders a student can make in inbound/ by hand: a student `..` would be collected to
# submitted/../source, over the master; an assignment the course does not have, named with markup.
ESCAPING = ("..+source+2026-12-07 10:00:00.000000 UTC+0badc0de", "eve+..+2026-12-07 10:00:00.000000 UTC+0badc0de",
            "eve+<img src=x onerror=alert(1)>+2026-12-07 10:00:00.000000 UTC+0badc0de")


def textstats_points(student: str, notebook: str, final: bool) -> tuple[float, float]:
    """(score, out of) a page shows, from the hand-worked scores of tests/helpers.EXPECTED."""
    cells = [c for c in TEXTSTATS_POINTS[notebook] if final or c in TEXTSTATS_PUBLIC]
    return float(sum(EXPECTED[student][c] for c in cells)), float(sum(TEXTSTATS_POINTS[notebook][c] for c in cells))


@pytest.fixture(scope="module")
def two_notebooks(course_env) -> Iterator[World]:
    """Two students submit textstats through nbgrader, the service grades each notebook; three
    hand-made inbound folders try to leave submitted/; the due date passes."""
    base = Path(tempfile.mkdtemp(prefix="coursekit-serve-textstats-"))
    w = World(base, {**nbgrader_env()}, f"sqlite:///{base / 'course' / 'gradebook.db'}")
    try:
        open_course(w, TEXTSTATS, f"c.Exchange.root = {str(w.exchange)!r}\nc.Serve.per_hour = 0",
                    ("nbgrader_config.py", f"source/{TEXTSTATS}"))
        w.start()
        stamps = {}
        for student in TEXTSTATS_STUDENTS:
            config = w.home(student) / ".jupyter" / "nbgrader_config.py"
            config.parent.mkdir(parents=True)
            config.write_text(f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
                              f"c.Exchange.root = {str(w.exchange)!r}\n")
            w.run(["nbgrader", "fetch_assignment", TEXTSTATS], w.home(student), HOME=str(w.home(student)))
            folder = w.home(student) / TEXTSTATS
            answer_textstats(folder, folder, ANSWERS[student])
            out = w.run(["nbgrader", "submit", TEXTSTATS, f"--student={student}"], w.home(student),
                        HOME=str(w.home(student)))
            (stamps[student],) = [t.strip() for t in re.findall(rf"Submitted as: {COURSE_ID} {TEXTSTATS} (.+)", out)]
        for name in ESCAPING:
            (w.exchange / COURSE_ID / "inbound" / name).mkdir()
            shutil.copytree(w.home("solved") / TEXTSTATS, w.exchange / COURSE_ID / "inbound" / name,
                            dirs_exist_ok=True)
            (w.exchange / COURSE_ID / "inbound" / name / "submission_secret.txt").write_text("0" * 32)
        w.early = {f"{s}/{nb}": text for s in TEXTSTATS_STUDENTS
                   for nb, text in textstats_pages(w, s, stamps[s], "(Score:").items()}
        w.instructor("db", "assignment", "add", TEXTSTATS, f"--duedate={datetime.now(timezone.utc).isoformat()}")
        w.final = {f"{s}/{nb}": text for s in TEXTSTATS_STUDENTS
                   for nb, text in textstats_pages(w, s, stamps[s], "final feedback").items()}
        deadline = time.monotonic() + WAIT
        while not w.rows("SELECT 1 FROM final") and time.monotonic() < deadline:
            time.sleep(0.2)
        yield w
    finally:
        if w.service is not None and w.service.poll() is None:
            w.service.send_signal(signal.SIGTERM)
            w.service.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def textstats_pages(w: World, student: str, stamp: str, has: str) -> dict[str, str]:
    """Both notebooks' pages the student fetches with `nbgrader fetch_feedback`, once both hold `has`."""
    deadline = time.monotonic() + WAIT
    folder = w.home(student) / TEXTSTATS / "feedback" / stamp
    while time.monotonic() < deadline:
        assert w.service is not None and w.service.poll() is None, w.service_log()
        w.run(["nbgrader", "fetch_feedback", TEXTSTATS, f"--student={student}"], w.home(student),
              HOME=str(w.home(student)))
        pages = {nb: (folder / f"{nb}.html").read_text(encoding="utf-8") for nb in NOTEBOOKS
                 if (folder / f"{nb}.html").exists()}
        if len(pages) == len(NOTEBOOKS) and all(has in text for text in pages.values()):
            return pages
        time.sleep(0.5)
    raise AssertionError(f"no feedback with {has!r} for both notebooks of {student}:\n{w.service_log()}")


def test_each_notebook_of_an_assignment_gets_its_own_page_before_and_after_the_due_date(two_notebooks):
    for student in TEXTSTATS_STUDENTS:
        for notebook in NOTEBOOKS:
            early, final = two_notebooks.early[f"{student}/{notebook}"], two_notebooks.final[f"{student}/{notebook}"]
            assert score(early) == textstats_points(student, notebook, final=False), (student, notebook)
            assert score(final) == textstats_points(student, notebook, final=True), (student, notebook)
            assert "graded after the due date" in early and "graded after the due date" not in final


def test_each_notebook_of_an_assignment_is_graded_into_the_gradebook(two_notebooks):
    got = gradebook_scores(two_notebooks.course, assignment=TEXTSTATS, url=two_notebooks.gradebook_url)
    for student in TEXTSTATS_STUDENTS:
        assert {c: got[student, c] for cells in TEXTSTATS_POINTS.values() for c in cells} == \
            {c: EXPECTED[student][c] for cells in TEXTSTATS_POINTS.values() for c in cells}, student
    rows = two_notebooks.rows("SELECT s.student, s.state, s.score, s.max_score, count(f.notebook) FROM submission s "
                              "JOIN feedback f ON f.name = s.name AND f.released_at IS NOT NULL GROUP BY s.name")
    final = {s: [sum(x) for x in zip(*(textstats_points(s, nb, final=True) for nb in NOTEBOOKS))]
             for s in TEXTSTATS_STUDENTS}
    # one row per submission: its two notebooks' scores added up; an early and a final page for each notebook
    assert sorted(rows) == sorted((s, "graded", *final[s], 4) for s in TEXTSTATS_STUDENTS)


def test_an_inbound_folder_named_to_leave_submitted_is_a_failure_and_is_never_collected(two_notebooks):
    course = two_notebooks.course
    master = GENERAL_COURSE / "source" / TEXTSTATS
    assert sorted(p.name for p in (course / "source" / TEXTSTATS).iterdir()) == sorted(p.name for p in master.iterdir())
    for notebook in NOTEBOOKS:
        assert (course / "source" / TEXTSTATS / f"{notebook}.ipynb").read_bytes() == \
            (master / f"{notebook}.ipynb").read_bytes()
    assert sorted(p.name for p in (course / "submitted").iterdir()) == sorted(TEXTSTATS_STUDENTS)
    failed = dict(two_notebooks.rows("SELECT name, reason FROM submission WHERE state = 'failed'"))
    assert set(failed) == set(ESCAPING), failed
    assert "not collected: the student '..' cannot be a folder under submitted/" in failed[ESCAPING[0]]
    assert "not collected: the assignment '..' cannot be a folder under submitted/" in failed[ESCAPING[1]]
    assert "the course has no assignment '<img src=x onerror=alert(1)>'" in failed[ESCAPING[2]]


# --- who made an inbound folder: c.Serve.check_owner ------------------------------------------------
# Two throw-away Unix accounts, named after this run: `ada`, whose solved work an administrator submits
# (as root, with --student), and `mal`, who makes folders in inbound/ as a student's own `nbgrader
# submit` would: one in its own name, one in ada's, one in the name of no account; beside them a
# symbolic link in ada's name.
# Each folder is staged outside inbound/, given to its owner, then renamed in, so the service never
# sees it with another owner.  Then the service starts again with c.Serve.check_owner = False, and
# mal submits a folder whose words.ipynb is a symbolic link to the master notebook.
OWNER_MARK = "coursekit test_serve check_owner, removed after the run"
NO_ACCOUNT = "no-such-account-here"
TEXTSTATS_TESTS = [c for cells in TEXTSTATS_POINTS.values() for c in cells]


@dataclass
class Owners:
    world: World
    ada: str
    mal: str
    genuine: str = ""  # ada's own submission (made as root with --student, as an administrator's)
    names: dict[str, str] = field(default_factory=dict)  # what -> inbound folder name
    ada_scores: dict[str, float] = field(default_factory=dict)  # while check_owner was on
    ada_feedback: list[str] = field(default_factory=list)
    ada_latest: str = ""
    mal_scores: dict[str, float] = field(default_factory=dict)  # mal's own submission
    linked_scores: dict[str, float] = field(default_factory=dict)  # mal's, with words.ipynb a link to the master
    status: str = ""
    swapped_scores: dict[str, float] = field(default_factory=dict)  # mal's final, his folder swapped for a link
    swapped_pages: list[str] = field(default_factory=list)  # its final pages, if any were made

    @property
    def inbound(self) -> Path:
        return self.world.exchange / COURSE_ID / "inbound"

    def staged(self, student: str) -> tuple[Path, str]:
        """A path outside inbound/ named as nbgrader's submit names a folder in `student`'s name, and its time."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        return self.world.base / "staging" / f"{student}+{TEXTSTATS}+{stamp}+{uuid.uuid4().hex}", stamp

    def stage(self, student: str, uid: int) -> Path:
        """A submission folder in `student`'s name holding ANSWERS["partial"], owned by `uid`, not yet in inbound/."""
        folder, stamp = self.staged(student)
        folder.mkdir(parents=True)
        answer_textstats(self.world.course / "release" / TEXTSTATS, folder, ANSWERS["partial"])
        (folder / "timestamp.txt").write_text(stamp)
        (folder / "submission_secret.txt").write_text(uuid.uuid4().hex * 4)
        for item in [folder, *folder.iterdir()]:
            os.chown(item, uid, uid)
        return folder

    def land(self, what: str, folder: Path) -> None:
        folder.rename(self.inbound / folder.name)
        self.names[what] = folder.name

    def wait_state(self, what: str, state: str) -> str:
        """The journal's reason once the folder `what` reached `state`."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.world.service is not None and self.world.service.poll() is None, self.world.service_log()
            rows = self.world.rows(f"SELECT state, reason FROM submission WHERE name = '{self.names[what]}'")
            if rows and rows[0][0] == state:
                return rows[0][1] or ""
            time.sleep(0.3)
        raise AssertionError(f"{what} never {state}:\n{self.world.service_log()}")

    def administrator_submits_for_ada(self) -> None:
        """ada's solved work, submitted by root with `nbgrader submit --student`, and its page fetched."""
        w, ada = self.world, self.ada
        config = w.home(ada) / ".jupyter" / "nbgrader_config.py"
        config.parent.mkdir(parents=True)
        config.write_text(f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
                          f"c.Exchange.root = {str(w.exchange)!r}\n")
        w.run(["nbgrader", "fetch_assignment", TEXTSTATS], w.home(ada), HOME=str(w.home(ada)))
        answer_textstats(w.home(ada) / TEXTSTATS, w.home(ada) / TEXTSTATS, ANSWERS["solved"])
        out = w.run(["nbgrader", "submit", TEXTSTATS, f"--student={ada}"], w.home(ada), HOME=str(w.home(ada)))
        (self.genuine,) = [t.strip() for t in re.findall(rf"Submitted as: {COURSE_ID} {TEXTSTATS} (.+)", out)]
        self.names["genuine"] = next(p.name for p in self.inbound.iterdir() if p.name.startswith(f"{ada}+"))
        textstats_pages(w, ada, self.genuine, "(Score:")

    def ada_now(self) -> tuple[dict[str, float], list[str], str]:
        """ada's grades, the feedback folders `nbgrader fetch_feedback` brings, the latest collected time."""
        w = self.world
        w.run(["nbgrader", "fetch_feedback", TEXTSTATS, f"--student={self.ada}"], w.home(self.ada), HOME=str(w.home(self.ada)))
        feedback = sorted(p.name for p in (w.home(self.ada) / TEXTSTATS / "feedback").iterdir())
        latest = (w.course / "submitted" / self.ada / TEXTSTATS / "timestamp.txt").read_text().strip()
        return self.scores(self.ada), feedback, latest

    def swap_for_master(self, away: Path) -> None:
        """mal swaps his checked, graded folder for a link to the master (the exchange lets every account
        rename in inbound/); the due date passes, so the final regrade reads his last submission again."""
        w = self.world
        swapped = self.inbound / self.names["linked"]
        swapped.rename(away)
        swapped.symlink_to(w.course / "source" / TEXTSTATS)
        w.instructor("db", "assignment", "add", TEXTSTATS, f"--duedate={datetime.now(timezone.utc).isoformat()}")
        deadline = time.monotonic() + WAIT
        while not w.rows(f"SELECT 1 FROM final WHERE assignment = '{TEXTSTATS}'"):
            assert time.monotonic() < deadline, w.service_log()
            assert w.service is not None and w.service.poll() is None, w.service_log()
            time.sleep(0.3)
        self.swapped_scores = self.scores(self.mal)
        self.swapped_pages = [bytes(row[0]).decode("utf-8", "replace") for row in w.rows(
            f"SELECT html FROM feedback WHERE name = '{self.names['linked']}' AND phase = 'final'")]

    def scores(self, student: str) -> dict[str, float]:
        got = gradebook_scores(self.world.course, assignment=TEXTSTATS, url=self.world.gradebook_url)
        return {c: got[student, c] for c in TEXTSTATS_TESTS}


@pytest.fixture(scope="module")
def owners(course_env) -> Iterator[Owners]:
    base = Path(tempfile.mkdtemp(prefix="coursekit-serve-owner-"))
    base.chmod(0o755)
    ada, mal = f"ckada{os.getpid()}", f"ckmal{os.getpid()}"
    accounts = HubAccounts({ada: [], mal: []}, (), OWNER_MARK)
    (base / "accounts").mkdir()
    o = Owners(World(base, {**nbgrader_env()}, f"sqlite:///{base / 'course' / 'gradebook.db'}"), ada, mal)
    w = o.world
    try:
        accounts.create(base / "accounts", {})
        uid = pwd.getpwnam(mal).pw_uid
        open_course(w, TEXTSTATS, f"c.Exchange.root = {str(w.exchange)!r}\nc.Serve.per_hour = 0",
                    ("nbgrader_config.py", f"source/{TEXTSTATS}"))
        w.start()
        o.administrator_submits_for_ada()

        o.land("forged", o.stage(ada, uid))
        o.land("no account", o.stage(NO_ACCOUNT, uid))
        link, _ = o.staged(ada)
        link.symlink_to(o.stage(ada, 0))  # a root-owned folder: the link, not its owner, is refused
        o.land("symlink", link)
        o.land("own", o.stage(mal, uid))
        for what in ("forged", "no account", "symlink"):
            o.wait_state(what, "failed")
        o.wait_state("own", "graded")
        o.ada_scores, o.ada_feedback, o.ada_latest = o.ada_now()
        o.mal_scores = o.scores(mal)
        o.status = subprocess.run([sys.executable, "-m", "coursekit", "status"], cwd=w.course, env=w.env,
                                  capture_output=True, text=True, check=True).stdout

        assert w.service is not None
        w.service.send_signal(signal.SIGTERM)
        w.service.wait(timeout=60)
        with (w.course / "nbgrader_config.py").open("a") as config_file:
            config_file.write("\nc.Serve.check_owner = False\n")
        w.start()
        o.land("forged, check_owner off", o.stage(ada, uid))
        o.wait_state("forged, check_owner off", "graded")
        linked = o.stage(mal, uid)
        (linked / "words.ipynb").unlink()
        (linked / "words.ipynb").symlink_to(w.course / "source" / TEXTSTATS / "words.ipynb")
        os.chown(linked / "words.ipynb", uid, uid, follow_symlinks=False)
        o.land("linked", linked)
        o.wait_state("linked", "graded")
        o.linked_scores = o.scores(mal)

        o.swap_for_master(base / "moved-away")
        yield o
    finally:
        if w.service is not None and w.service.poll() is None:
            w.service.send_signal(signal.SIGTERM)
            w.service.wait(timeout=60)
        accounts.remove()
        shutil.rmtree(base, ignore_errors=True)


def test_a_folder_made_by_one_student_in_a_classmates_name_is_not_collected(owners):
    reason = owners.world.rows(f"SELECT reason FROM submission WHERE name = '{owners.names['forged']}'")[0][0]
    assert reason.startswith(f"not collected: the folder was made by account '{owners.mal}' in the name of "
                             f"'{owners.ada}' (c.Serve.check_owner)"), reason
    assert owners.ada_scores == {c: float(EXPECTED["solved"][c]) for c in TEXTSTATS_TESTS}
    assert owners.ada_feedback == [owners.genuine]  # fetch_feedback brings the genuine page only
    assert owners.ada_latest == owners.genuine  # submitted/ still holds ada's own submission
    assert f"{owners.names['forged'][:60]}" in owners.status and \
        f"made by account '{owners.mal}' in the name of '{owners.ada}'" in owners.status
    assert re.search(r"failed: 3\b", owners.status), owners.status


def test_a_folder_in_the_name_of_no_account_or_a_symbolic_link_is_not_collected(owners):
    failed = dict(owners.world.rows("SELECT name, reason FROM submission WHERE state = 'failed'"))
    assert f"in the name of '{NO_ACCOUNT}', which is no account on this machine" in failed[owners.names["no account"]]
    assert "is a symbolic link or a file, not a folder" in failed[owners.names["symlink"]]
    assert not (owners.world.course / "submitted" / NO_ACCOUNT).exists()


def test_a_folder_made_by_the_student_it_names_or_by_root_is_graded(owners):
    assert owners.mal_scores == {c: float(EXPECTED["partial"][c]) for c in TEXTSTATS_TESTS}
    assert owners.world.rows(f"SELECT state FROM submission WHERE name = '{owners.names['genuine']}'") == [("graded",)]


def test_with_check_owner_off_a_folder_in_a_classmates_name_is_collected(owners):
    """The setting for hubs where the owner says nothing: the forged folder becomes ada's latest."""
    scores, _, latest = owners.ada_now()
    assert latest == owners.names["forged, check_owner off"].split("+")[2]
    assert scores == {c: float(EXPECTED["partial"][c]) for c in TEXTSTATS_TESTS}


def test_a_notebook_that_is_a_symbolic_link_is_collected_as_a_link_and_never_followed(owners):
    """The service collects as root: following the link copied the master (or any file root can read)
    into submitted/ as mal's notebook."""
    words = owners.world.course / "submitted" / owners.mal / TEXTSTATS / "words.ipynb"
    assert words.is_symlink()
    assert owners.linked_scores == {c: 0.0 if c in TEXTSTATS_POINTS["words"] else float(EXPECTED["partial"][c])
                                    for c in TEXTSTATS_TESTS}


def test_a_checked_folder_swapped_for_a_link_is_never_read_through_it(owners):
    """The owner check is made on the opened folder and every later read goes through it: read by
    path, the final regrade graded the master in source/ as mal's and released it to him."""
    assert owners.world.service is not None and owners.world.service.poll() is None
    assert owners.swapped_scores == dict.fromkeys(TEXTSTATS_TESTS, 0.0)
    master = "\n".join("".join(cell["source"]) for cell in json.loads(
        (GENERAL_COURSE / "source" / TEXTSTATS / "stats.ipynb").read_text(encoding="utf-8"))["cells"])
    hidden = [line.strip() for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", master, re.S)
              for line in block.splitlines() if line.strip()]
    assert hidden
    for page in owners.swapped_pages:
        assert not any(line in page for line in hidden)
