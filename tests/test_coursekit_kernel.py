"""coursekit runs a notebook the way an IPython kernel under `nbgrader autograde` does (issue 19).

Three small assignments of `tests/general_course/`, each written for what a kernel does and a
plain `exec` does not:

* `plots`: tests that look at Matplotlib's current axes (`plt.gca().lines`, bars of a histogram).
  In a kernel the inline backend shows and closes every figure when its cell ends, so the lesson's
  own demo figure and a student's trial plot are gone when a test cell starts.
* `datafile`: a locked setup cell that reads `temperatures.csv`, a file beside the notebook, a
  graded function that opens it by a relative path, and students who return a generator where the
  master returns a list (`list(warm(...))` passes in a kernel).
* `kernel`: a generator (`yield`) and a coroutine-style generator (`send`), a function that returns
  an iterator where the master returns a list, a test that reads a function's source with
  `inspect.getsource`, a correct answer that computes for 12 s (the course allows 60 s a cell),
  and IPython syntax: `%reset -f` in a locked cell, `%%time`, `%time`, `!cmd` and `?`.

Three students each (solved, wrong, untouched), written here by hand, are graded with the real
`nbgrader autograde` (a real kernel) and with `coursekit autograde`; both must give every cell the
score worked out by hand below.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tests.helpers import (
    GENERAL_COURSE,
    GENERAL_TIMESTAMP,
    copy_course,
    edit_cells,
    generate_assignment,
    gradebook_scores,
    nbgrader_autograde,
    nbgrader_env,
    new_course,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ASSIGNMENTS = ("plots", "datafile", "kernel")

# A correct square that computes for 12 s (more than coursekit's old per-call limit of 10 s and,
# on an idle core, its old 10 s of CPU; well under the course's 60 s a cell).  It counts wall-clock
# time, so that a loaded machine does not push it past the cell timeout in either grader.
SLOW_SQUARE = '''import time

def slow_square(x):
    start = time.monotonic()
    while time.monotonic() - start < 12:
        pass
    return x * x'''

# Whole solution cells, by grade id, as each student left them.
ANSWERS = {
    "plots": {
        "solved": {
            "plot_squares": 'def plot_squares(xs):\n    plt.plot(xs, [x * x for x in xs], color="red")\n\n\n'
                            "plot_squares(XS)  # trying it out: this figure is closed when the cell ends",
            "histogram": "def histogram(values, bins):\n    plt.hist(values, bins=bins)\n\n\nhistogram(XS, 2)",
        },
        "wrong": {
            "plot_squares": 'def plot_squares(xs):\n    plt.plot(xs, [x * x for x in xs], color="blue")',
            "histogram": "def histogram(values, bins):\n    plt.hist(values, bins=bins + 1)",
        },
        "untouched": {},
    },
    "datafile": {
        "solved": {
            "mean_temperature": 'def mean_temperature(rows):\n    temps = [float(row["temperature"]) for row in rows]\n'
                                "    return sum(temps) / len(temps)",
            "cities": 'def cities(path):\n    with open(path, encoding="utf-8") as f:\n'
                      '        return [line.split(",")[0] for line in f.read().splitlines()[1:]]',
            "warm": 'def warm(rows, threshold):\n'
                    '    return (row["city"] for row in rows if float(row["temperature"]) > threshold)',
        },
        "wrong": {
            "mean_temperature": 'def mean_temperature(rows):\n    return float(rows[0]["temperature"])',
            "cities": 'def cities(path):\n    with open(path, encoding="utf-8") as f:\n'
                      '        return sorted(row["city"] for row in csv.DictReader(f))',
            "warm": 'def warm(rows, threshold):\n'
                    '    return (row["city"] for row in rows if float(row["temperature"]) >= threshold)',
        },
        "untouched": {},
    },
    "kernel": {
        "solved": {
            "countdown": "def countdown(n):\n    for k in range(n, 0, -1):\n        yield k",
            "accumulator": "%%time\ndef accumulator():\n    total = 0\n    while True:\n        total += yield total",
            "evens": "def evens(xs):\n    return (x for x in xs if x % 2 == 0)  # a generator: list() of it is right",
            "square_all": "%time squares = [x * x for x in range(5)]\n\n"
                          "def square_all(xs):\n    return [x * x for x in xs]\n\n"
                          "!echo checking my answer\nsquare_all?",
            "slow_square": SLOW_SQUARE,
        },
        "wrong": {
            "countdown": "def countdown(n):\n    return [n - i for i in range(n)]  # a list, not a generator",
            "accumulator": "def accumulator():\n    total = 0\n    while True:\n        total = yield total",
            "evens": "def evens(xs):\n    return filter(lambda x: x % 2 == 0, xs)  # an iterator: list() of it is right",
            "square_all": "def square_all(xs):\n    return list(map(lambda x: x * x, xs))",
            "slow_square": "def slow_square(x):\n    return x ** 3",
        },
        "untouched": {},
    },
}

# nbgrader's score of every test cell, worked out by hand from the tests above.
EXPECTED = {
    "plots": {
        "solved": {"test_plot_squares": 1, "test_histogram": 1, "test_new_figure": 1},
        "wrong": {"test_plot_squares": 0, "test_histogram": 0, "test_new_figure": 1},  # 3 bars, one axes
        "untouched": {"test_plot_squares": 0, "test_histogram": 0, "test_new_figure": 0},
    },
    "datafile": {
        "solved": {"test_mean_temperature": 1, "test_cities": 1, "test_warm": 1},
        "wrong": {"test_mean_temperature": 0, "test_cities": 0, "test_warm": 0},  # Shanghai is 16, not warmer
        "untouched": {"test_mean_temperature": 0, "test_cities": 0, "test_warm": 0},
    },
    "kernel": {
        "solved": {"test_countdown": 1, "test_accumulator": 1, "test_evens": 1, "test_square_all": 1,
                   "test_slow_square": 1},
        "wrong": {"test_countdown": 0, "test_accumulator": 0, "test_evens": 1, "test_square_all": 0,
                  "test_slow_square": 0},
        "untouched": {"test_countdown": 0, "test_accumulator": 0, "test_evens": 0, "test_square_all": 0,
                      "test_slow_square": 0},
    },
}


def _replaced_by(text: str) -> Callable[[str], str]:
    return lambda _source: text


def write_students(course: Path, assignment: str) -> None:
    """submitted/<student>/<assignment>/: the release's notebook with the student's cells, and
    the release's other files (a student's folder holds what they fetched)."""
    release = course / "release" / assignment
    for student, answers in ANSWERS[assignment].items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        for path in release.iterdir():
            if path.suffix == ".ipynb":
                nb = json.loads(path.read_text(encoding="utf-8"))
                edit_cells(nb, {gid: _replaced_by(text) for gid, text in answers.items()})
                (folder / path.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
            else:
                (folder / path.name).write_bytes(path.read_bytes())
        (folder / "timestamp.txt").write_text(GENERAL_TIMESTAMP + "\n")


def per_cell(course: Path, assignment: str) -> dict[str, dict[str, float | None]]:
    scores: dict[str, dict[str, float | None]] = {}
    for (student, cell), score in gradebook_scores(course, assignment=assignment,
                                                   url=f"sqlite:///{course / 'gradebook.db'}").items():
        if cell.startswith("test_"):
            scores.setdefault(student, {})[cell] = score
    return scores


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """{assignment: (nbgrader's per-cell scores, coursekit's, coursekit's --json lines)}."""
    base = tmp_path_factory.mktemp("kernel")
    template = new_course(base / "template", ("nbgrader_config.py", "source"), origin=GENERAL_COURSE)
    for assignment in ASSIGNMENTS:
        generate_assignment(template, "--log-level=WARN", assignment=assignment)
        write_students(template, assignment)
    stock, fast = copy_course(template, base / "nbgrader"), copy_course(template, base / "coursekit")
    results = {}
    for assignment in ASSIGNMENTS:
        nbgrader_autograde(stock, "--log-level=ERROR", assignment=assignment, timeout=900)
        done = subprocess.run([sys.executable, "-m", "coursekit", "autograde", assignment, "--json"], cwd=fast,
                              env=nbgrader_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        results[assignment] = (per_cell(stock, assignment), per_cell(fast, assignment), lines)
    return results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_gives_the_hand_worked_scores(graded, assignment):
    stock, _, _ = graded[assignment]
    assert stock == EXPECTED[assignment]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_coursekit_gives_every_cell_nbgraders_score(graded, assignment):
    stock, fast, lines = graded[assignment]
    reasons = {line["student"]: line["reason"] for line in lines}
    assert fast == EXPECTED[assignment], reasons
    assert fast == stock


def test_plot_tests_run_in_the_sandbox_and_say_why(graded):
    _, _, lines = graded["plots"]
    solved = next(line for line in lines if line["student"] == "solved")
    assert {cell["mode"] for cell in solved["cells"].values()} == {"sandbox"}


def test_set_up_that_reads_a_file_runs_in_the_grader_and_its_tests_are_replayed(graded):
    _, _, lines = graded["datafile"]
    solved = next(line for line in lines if line["student"] == "solved")
    assert solved["cells"]["test_mean_temperature"]["mode"] == "replay"


def test_a_returned_generator_is_graded_again_in_the_sandbox_with_the_reason(graded):
    _, _, lines = graded["datafile"]
    for student in ("solved", "wrong"):
        line = next(line for line in lines if line["student"] == student)
        assert line["cells"]["test_warm"]["mode"] == "sandbox"
        assert "warm returned a generator object, which is not plain data" in line["reason"]
