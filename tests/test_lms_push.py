"""`coursekit lms push` against a real LTI 1.3 platform on 127.0.0.1 (scripts/lti_platform.py:
lti1p3platform with real RSA keys, signed client assertions and access tokens).

A class of five is graded by `coursekit autograde`: ada solves everything (9/9), ben divides by the
sample standard deviation in standardize (6/9), cy leaves the stubs (0/9), dee solves everything after the due date (9/9,
late), eve solves everything but is not enrolled in the LMS at first.  ada and ben carry the LMS's
user id in the gradebook (as an LTI launch through the hub records it); the others' LMS user id
is their student id.  The tests run in order on that one class and platform, each a step of a
term: push, enrol eve and push the rest, push again, regrade, the LMS down, a refused token,
credentials in the wrong place.  Scores are read back from the platform's AGS results endpoint
over HTTP, with an access token the platform signs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from pylti1p3.registration import Registration

from scripts.lti_platform import Platform, new_key
from tests.helpers import (
    ASSIGNMENT,
    CORRECT,
    COURSE_ID,
    build_template,
    coursekit,
    lms_results,
    nbgrader_env,
    release_notebook,
    solve,
    submit,
)

SAMPLE_STD = CORRECT["standardize"].replace("X.std(axis=0)", "X.std(axis=0, ddof=1)")  # fails both tests
DUE = datetime(2027, 3, 1, 17, 0)  # UTC, as nbgrader stores it
ON_TIME, LATE = "2027-03-01 16:00:00.000000 UTC", "2027-03-01 19:30:00.000000 UTC"  # dee: 2 h 30 min late
# student: (what they wrote, submitted at, hand-counted score, LMS user id)
CLASS = {
    "ada": (CORRECT, ON_TIME, 9.0, "0ae3c1d2-6f1b-4c8e-9d55-0a1b2c3d4e5f"),
    "ben": ({**CORRECT, "standardize": SAMPLE_STD}, ON_TIME, 6.0, "7d0c2f4e-2222-4bbb-8ccc-1234567890ab"),
    "cy": ({}, ON_TIME, 0.0, "cy"),
    "dee": (CORRECT, LATE, 9.0, "dee"),
    "eve": (CORRECT, ON_TIME, 9.0, "eve"),
}


class Term:
    """The class, the platform and the tool's registration there."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.tool_key, self.tool_public = new_key()
        self.platform = Platform(tool_jwks={"keys": [dict(Registration.get_jwk(self.tool_public))]}).start()
        for student, (_, _, _, user_id) in CLASS.items():
            if student != "eve":
                self.platform.enrol(user_id, "Learner", name=student.title())
        self.platform.enrol("teacher-1", "Instructor", name="Teacher")
        self.secrets = base / "secrets"
        self.secrets.mkdir(mode=0o700)
        self.credentials = self.write_credentials("lti.json", self.tool_key)
        self.course = build_template(base / "course")
        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}", COURSE_ID) as gb:
            gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
            for student, (_, _, _, user_id) in CLASS.items():
                gb.update_or_create_student(student, lms_user_id=user_id if user_id != student else None)
        for student, (bodies, when, _, _) in CLASS.items():
            submit(self.course, student, solve(release_notebook(self.course), bodies), timestamp=when)
        coursekit(self.course)

    def write_credentials(self, name: str, private_key: str, folder: Path | None = None, mode: int = 0o600) -> Path:
        folder = folder or self.secrets
        key = folder / f"{name}.pem"
        key.write_text(private_key)
        key.chmod(mode)
        path = folder / name
        path.write_text(json.dumps({
            "issuer": self.platform.url, "client_id": self.platform.client_id,
            "deployment_id": self.platform.deployment_id, "token_url": self.platform.token_url,
            "lineitems_url": self.platform.lineitems_url, "private_key_file": str(key)}))
        path.chmod(mode)
        return path

    def push(self, credentials: Path | None = None, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "coursekit", "lms", "push", ASSIGNMENT, "--credentials",
                               str(credentials or self.credentials), *args],
                              cwd=self.course, env=nbgrader_env(), capture_output=True, text=True, timeout=120)

    def regrade(self, student: str, bodies: dict[str, str]) -> None:
        submit(self.course, student, solve(release_notebook(self.course), bodies), timestamp=CLASS[student][1])
        coursekit(self.course, "--force", "--student", student)

    def results(self) -> dict[str, tuple[float, float, str]]:
        return lms_results(self.platform, self.tool_key, self.tool_public)


@pytest.fixture(scope="module")
def term(tmp_path_factory) -> Term:
    t = Term(tmp_path_factory.mktemp("lms"))
    yield t
    t.platform.stop()


def expected(*students: str, **scores: float) -> dict[str, tuple[float, float, str]]:
    late = "Submitted 2 h 30 min late (submitted 2027-03-01T19:30:00.000Z)."
    return {CLASS[s][3]: (scores.get(s, CLASS[s][2]), 9.0, late if s == "dee" else "") for s in students}


def test_a_push_sends_every_graded_score_and_names_the_student_the_lms_does_not_know(term):
    done = term.push()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NOT SENT   'eve'" in done.stderr and "not a learner in this course" in done.stderr
    assert "4 sent, 0 already in the LMS, 1 not sent" in done.stdout
    ((lineitem, item),) = term.platform.lineitems.items()
    assert (item["resourceId"], item["label"], item["scoreMaximum"], item["tag"]) == (ASSIGNMENT, ASSIGNMENT, 9.0,
                                                                                      "coursekit")
    assert term.results() == expected("ada", "ben", "cy", "dee")
    for _, score in term.platform.received:
        assert (score["activityProgress"], score["gradingProgress"]) == ("Completed", "FullyGraded")
        assert score["scoreMaximum"] == 9.0
    submitted = {s["userId"]: s["submission"]["submittedAt"] for _, s in term.platform.received}
    assert submitted[CLASS["dee"][3]] == "2027-03-01T19:30:00.000Z"
    assert submitted[CLASS["ada"][3]] == "2027-03-01T16:00:00.000Z"


def test_a_rerun_after_the_student_is_enrolled_sends_only_the_rest(term):
    term.platform.enrol("eve", "Learner", name="Eve")
    before = len(term.platform.received)
    done = term.push()
    assert done.returncode == 0, done.stderr
    assert "1 sent, 4 already in the LMS, 0 not sent" in done.stdout
    assert [s["userId"] for _, s in term.platform.received[before:]] == ["eve"]
    assert term.results() == expected(*CLASS)


def test_pushing_again_changes_nothing_in_the_lms(term):
    before, results = list(term.platform.received), term.results()
    done = term.push()
    assert done.returncode == 0, done.stderr
    assert "0 sent, 5 already in the LMS" in done.stdout
    assert term.platform.received == before and term.results() == results
    assert len(term.platform.lineitems) == 1  # found, not created again


def test_a_regraded_student_gets_the_new_score(term):
    term.regrade("ben", CORRECT)
    before = len(term.platform.received)
    done = term.push()
    assert done.returncode == 0, done.stderr
    assert [s["userId"] for _, s in term.platform.received[before:]] == [CLASS["ben"][3]]
    assert term.results() == expected(*CLASS, ben=9.0)


def test_with_the_lms_down_every_student_is_named_and_a_rerun_sends_them(term):
    term.regrade("cy", CORRECT)
    term.platform.stop()
    try:
        done = term.push()
    finally:
        term.platform.start()
    assert done.returncode == 1
    assert "could not be reached" in done.stderr
    for student in CLASS:
        assert f"NOT SENT   {student!r}" in done.stderr
    assert term.results() == expected(*CLASS, ben=9.0)  # cy still 0 in the LMS
    done = term.push()
    assert done.returncode == 0, done.stderr
    assert "1 sent, 4 already in the LMS" in done.stdout
    assert term.results() == expected(*CLASS, ben=9.0, cy=9.0)


def test_a_refused_token_names_every_student_and_sends_nothing(term):
    stranger, _ = new_key()  # a key the LMS was never given
    wrong = term.write_credentials("stranger.json", stranger)
    before = list(term.platform.received)
    done = term.push(wrong)
    assert done.returncode == 1
    assert "refused the access token (HTTP 401" in done.stderr
    assert all(f"NOT SENT   {s!r}" in done.stderr for s in CLASS)
    assert term.platform.received == before


def test_credentials_inside_the_course_folder_or_readable_by_others_are_refused(term):
    inside = term.write_credentials("lti.json", term.tool_key, folder=term.course)
    done = term.push(inside)
    assert done.returncode == 2 and "inside the course folder" in done.stderr, done.stderr
    shared = term.base / "shared"
    shared.mkdir()
    readable = term.write_credentials("lti.json", term.tool_key, folder=shared, mode=0o644)
    done = term.push(readable)
    assert done.returncode == 2 and "may be read by others (mode 644)" in done.stderr, done.stderr
    os.chmod(readable, 0o600)  # the key file is still 644: refused too
    done = term.push(readable)
    assert done.returncode == 2 and "private key" in done.stderr, done.stderr


def test_a_grading_service_can_push_one_students_final_grade(term):
    from coursekit.lms import load_credentials, push_grades

    term.regrade("cy", {**CORRECT, "standardize": SAMPLE_STD})
    result = push_grades(course_dir=term.course, assignment=ASSIGNMENT, students=["cy"],
                         credentials=load_credentials(course_dir=term.course, file=term.credentials))
    assert (result.sent, result.failed) == ({"cy": 6.0}, {})
    assert term.results()[CLASS["cy"][3]] == (6.0, 9.0, "")


def test_lms_key_prints_the_public_key_the_lms_is_given(term):
    done = subprocess.run([sys.executable, "-m", "coursekit", "lms", "key", "--credentials", str(term.credentials)],
                          cwd=term.course, env=nbgrader_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    jwk, _, pem = done.stdout.partition("}\n")
    assert json.loads(jwk + "}") == term.platform.tool_jwks["keys"][0]
    assert pem == term.tool_public and "PRIVATE" not in done.stdout


def test_credentials_can_come_from_the_environment(term):
    values = json.loads(term.credentials.read_text())
    env = {**nbgrader_env(), **{f"COURSEKIT_LTI_{key.upper()}": value for key, value in values.items()}}
    done = subprocess.run([sys.executable, "-m", "coursekit", "lms", "push", ASSIGNMENT], cwd=term.course, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0 sent, 5 already in the LMS" in done.stdout
    del env["COURSEKIT_LTI_TOKEN_URL"]
    done = subprocess.run([sys.executable, "-m", "coursekit", "lms", "push", ASSIGNMENT], cwd=term.course, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "lack COURSEKIT_LTI_TOKEN_URL" in done.stderr, done.stderr
