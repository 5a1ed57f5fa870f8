"""A grader killed with SIGKILL and started again finishes the rest without regrading what is
done; two graders on the same course at once grade each submission once and leave a
consistent gradebook; the same tasks on a real Dask cluster give the same grades."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ASSIGNMENT,
    KILLED,
    copy_course,
    coursekit,
    expected_scores,
    gradebook_scores,
    nbgrader_env,
    slow_down_last,
)

CLASS = 80


@pytest.fixture(scope="module")
def class_template(generated_class):
    return generated_class("reliability", CLASS)


def start(course, *args):
    return subprocess.Popen([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json", *args],
                            cwd=course, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def command_line(pid: int | str) -> bytes:
    """The process's command line, or b"" once it has exited (a zombie's is empty too)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_consistent(course, manifest):
    """Every submission has all six scores, equal to the hand-worked ones, and a graded notebook."""
    assert gradebook_scores(course) == expected_scores(manifest)
    for student in manifest:
        graded = course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert json.loads(graded.read_text())["cells"], student


def test_a_batch_killed_with_sigkill_resumes_without_regrading_what_was_done(class_template, tmp_path):
    base, template, manifest = class_template
    course = copy_course(template, tmp_path / "course")
    slow = slow_down_last(course, manifest)
    grader = start(course)
    done_before_kill = []
    for line in grader.stdout:
        done_before_kill.append(json.loads(line)["student"])
        if len(done_before_kill) == 15:
            break
    os.killpg(grader.pid, signal.SIGKILL)
    grader.communicate()  # waits, and closes the pipes
    assert grader.returncode == -signal.SIGKILL
    assert len(done_before_kill) == 15 < CLASS

    second = coursekit(course)
    skipped = {r["student"] for r in second if r["status"] == "skipped"}
    graded = {r["student"] for r in second if r["status"] == "graded"}
    assert set(done_before_kill) <= skipped  # reported done before the kill: not graded again
    assert slow[-1] in graded, "the kill did not land mid-batch"
    assert skipped | graded == set(manifest) and not skipped & graded
    assert_consistent(course, manifest)


def test_two_graders_started_at_once_grade_each_submission_once(class_template, tmp_path):
    base, template, manifest = class_template
    course = copy_course(template, tmp_path / "course")
    graders = [start(course), start(course)]
    outputs = [None, None]

    def collect(i):
        outputs[i] = graders[i].communicate(timeout=600)

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [g.returncode for g in graders] == [0, 0], [o[1][-2000:] for o in outputs]
    reports = [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]
    graded = [{r["student"] for r in report if r["status"] == "graded"} for report in reports]
    assert not graded[0] & graded[1]
    assert graded[0] | graded[1] == set(manifest)
    assert graded[0] and graded[1]  # both really worked
    assert_consistent(course, manifest)


def test_grading_through_a_dask_cluster_gives_the_same_grades_as_the_local_pool(class_template, tmp_path):
    from distributed import LocalCluster

    base, template, manifest = class_template
    local = copy_course(template, tmp_path / "local")
    remote = copy_course(template, tmp_path / "dask")
    coursekit(local)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        results = coursekit(remote, "--scheduler", cluster.scheduler_address)
    assert {r["status"] for r in results} == {"graded"} and len(results) == CLASS
    assert gradebook_scores(remote) == gradebook_scores(local)
    assert_consistent(remote, manifest)


def test_a_worker_process_killed_mid_batch_costs_no_submission(class_template, tmp_path):
    base, template, manifest = class_template
    course = copy_course(template, tmp_path / "course")
    # Files, not pipes: the test reads the first line while the grader runs, then the rest (reading
    # a pipe line by line, then with communicate(), loses what the line reader had buffered).
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        grader = subprocess.Popen([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json"],
                                  cwd=course, env=nbgrader_env(), stdout=out, stderr=err, start_new_session=True)
    try:
        while not out_path.read_text().count("\n") and grader.poll() is None:  # workers are up and grading
            time.sleep(0.01)
        assert grader.poll() is None, f"the grader exited before grading anything:\n{err_path.read_text()[-3000:]}"
        # The pool's workers are forked from the grader and share its command line; its other
        # children (the isolation probe's zygote, possibly not yet reaped) do not.
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(grader.pid)], capture_output=True,
                                  text=True).stdout.split()
        workers = [pid for pid in children if command_line(pid) == command_line(grader.pid)]
        assert workers
        os.kill(int(workers[0]), signal.SIGKILL)
        grader.wait(timeout=600)
    finally:
        if grader.poll() is None:  # stuck: leave no grader behind
            os.killpg(grader.pid, signal.SIGKILL)
            grader.wait()
    err_text = err_path.read_text()
    assert grader.returncode == 0, err_text[-2000:]
    assert re.search(rf"a worker process died \(({KILLED})[^;]*; pid ", err_text), err_text[-2000:]
    reports = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["status"] for r in reports] == ["graded"] * CLASS
    assert sorted(r["student"] for r in reports) == sorted(manifest)  # each once
    assert_consistent(course, manifest)
