"""coursekit's course-specific settings: read from the course's nbgrader_config.py (c.CourseKit.*)
and acted on by the real grader, plus the package's public face (API names, version)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

import coursekit
from coursekit.config import DEFAULTS
from coursekit.extract import AssignmentPlan, MasterCell
from coursekit.pipeline import installed_imports
from coursekit.read import CourseError, load_course
from scripts.course import ASSIGNMENT, ROOT
from scripts.student_work import CORRECT, solve
from tests.helpers import copy_course, nbgrader_env, release_notebook, submit
from tests.helpers import coursekit as run_coursekit

WRONG_ZEROS = CORRECT["initialize_parameters_zeros"].replace("layers_dims[l - 1]", "layers_dims[1]")
# A student function that scores only where the sandbox preloaded matplotlib.pyplot.
# colorsys: a module nothing in the notebook imports, so only a preload can have loaded it.
PROBE_PRELOAD = ('import sys\nassert "colorsys" in sys.modules, "not preloaded"\n'
                 + CORRECT["initialize_parameters_random"])
ENDLESS = "while True:\n    pass"


def with_config(template: Path, dest: Path, lines: str) -> Path:
    course = copy_course(template, dest)
    with open(course / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write("\n" + lines + "\n")
    return course


def test_the_course_sets_its_own_values_in_nbgrader_config():
    settings = load_course(ROOT).settings
    assert {"public_tests.py", "init_utils.py"} <= set(settings.trusted_modules)
    assert settings.traceback_modules == ("public_tests.py",)
    assert {"matplotlib.pyplot", "h5py"} <= set(settings.sandbox_preload)
    assert settings.limits.memory_bytes == 2048 << 20
    # nbgrader's limit: the course's c.ExecutePreprocessor.timeout, per cell; coursekit's total is a safety net
    assert settings.limits.cell_seconds == 120 and settings.limits.wall_seconds == 3600


@pytest.mark.parametrize("lines, seconds", [
    ("", 30),  # nbgrader's own default
    ("c.ExecutePreprocessor.timeout = 60", 60),
    ("c.NotebookClient.timeout = 7\nc.ExecutePreprocessor.timeout = 60\nc.Execute.timeout = 45", 45),
    ("c.ExecutePreprocessor.timeout = None", None),  # no per-cell limit: only the total applies
    ("c.ExecutePreprocessor.timeout = -1", None),
])
def test_the_time_limit_of_a_cell_is_nbgraders(tmp_path, lines, seconds):
    (tmp_path / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseKit.wall_seconds = 900\n{lines}\n")
    settings = load_course(tmp_path).settings
    assert settings.limits.cell_seconds == seconds
    assert settings.run_limits(2).wall_seconds == (2 * seconds + 10 if seconds else 900)


def test_a_run_may_take_its_cells_limits_and_its_cpu_follows_its_wall_clock():
    settings = replace(DEFAULTS, limits=replace(DEFAULTS.limits, cell_seconds=30.0))
    run = settings.run_limits(4)
    assert run.wall_seconds == 4 * 30 + 10 and run.cpu_seconds == 130  # nbgrader would allow 30 s a cell
    assert run.cell_seconds == 30 and run.watchdog_seconds == 130 + 15  # the grader waits for the zygote
    capped = replace(settings, limits=replace(settings.limits, wall_seconds=20.0))  # --wall-seconds 20
    assert capped.run_limits(4).wall_seconds == 20
    assert replace(settings, cpu_seconds=5).run_limits(4).cpu_seconds == 5
    # a local pool's worker holding one submission longer than its three runs, twice, is stuck
    assert DEFAULTS.worker_seconds == 2 * 3 * (3600 + 15) + 30


def test_the_wall_clock_limit_has_one_name_from_the_command_line_to_the_sandbox(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseKit.wall_seconds = 900\n")
    assert load_course(tmp_path, {"wall_seconds": 60}).settings.limits.wall_seconds == 60
    with pytest.raises(CourseError, match="the command line or .*c.CourseKit.wall_seconds must be positive"):
        load_course(tmp_path, {"wall_seconds": 0})
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseKit.timeout = 900\n")
    with pytest.raises(CourseError, match="c.CourseKit.timeout is now called c.CourseKit.wall_seconds"):
        load_course(tmp_path)  # the earlier name is not ignored in silence


def test_a_course_that_sets_nothing_gets_general_defaults(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    settings = load_course(tmp_path).settings
    assert settings == DEFAULTS
    assert settings.trusted_modules == ("*.py",)
    assert not {"matplotlib", "matplotlib.pyplot", "h5py"} & set(settings.sandbox_preload)
    assert settings.workers is None  # one per core, and one more


def test_the_number_of_workers_is_a_course_setting(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseKit.workers = 3\n")
    assert load_course(tmp_path).settings.workers == 3


@pytest.mark.parametrize("line, words", [
    ("c.CourseKit.wall_seconds = -1", "c.CourseKit.wall_seconds must be positive"),
    ("c.CourseKit.memory_mb = 100", "memory_bytes must be at least"),
    ("c.CourseKit.wall_seconds = 'long'", "'wall_seconds' trait of a CourseKit instance expected a float"),
    ("c.CourseKit.workers = -1", "c.CourseKit.workers must be 0 (one per core, and one more) or more"),
])
def test_a_wrong_value_stops_grading_with_the_settings_name(tmp_path, line, words):
    (tmp_path / "nbgrader_config.py").write_text(f"c = get_config()\n{line}\n")
    with pytest.raises(CourseError, match="nbgrader_config.py") as caught:
        load_course(tmp_path)
    assert words in str(caught.value)


def test_coursekit_config_prints_each_setting_with_its_value_and_help():
    proc = subprocess.run([sys.executable, "-m", "coursekit", "config", "--course-dir", str(ROOT)],
                          env=nbgrader_env(), capture_output=True, text=True, check=True)
    assert "c.CourseKit.traceback_modules = ['public_tests.py']" in proc.stdout
    assert "c.CourseKit.wall_seconds = 3600.0" in proc.stdout
    assert "--wall-seconds` overrides it" in proc.stdout  # the help text follows the value


def graded_cells(result: dict) -> dict[str, float]:
    return {grade_id: cell["score"] for grade_id, cell in result["cells"].items()}


def autograded_traceback(course: Path, student: str, grade_id: str) -> str:
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return "\n".join(line for o in cell.outputs if o.output_type == "error" for line in o.traceback)


def test_the_grader_uses_the_courses_traceback_filter_and_preloads(template_course, tmp_path):
    course = copy_course(template_course, tmp_path / "course")
    submit(course, "s1", solve(release_notebook(), {**CORRECT, "initialize_parameters_zeros": WRONG_ZEROS,
                                                     "initialize_parameters_random": PROBE_PRELOAD}))
    (result,) = run_coursekit(course)
    assert graded_cells(result)["test_random_public"] == 0  # the course does not preload colorsys
    assert "not preloaded" in result["cells"]["test_random_public"]["message"]
    shown = autograded_traceback(course, "s1", "test_zeros_public")
    assert "public_tests.py" in shown and "has shape (2, 2), expected (2, 3)" in shown
    assert "numpy" not in shown  # frames outside the listed helper modules stay out


def test_other_settings_change_what_the_grader_does(template_course, tmp_path):
    course = with_config(template_course, tmp_path / "course", "\n".join([
        "c.CourseKit.traceback_modules = []",
        "c.CourseKit.sandbox_preload = ['numpy', 'colorsys']",
        "c.CourseKit.wall_seconds = 15",  # ENDLESS runs into it; the set-up (importing Matplotlib) has room under load
    ]))
    submit(course, "s1", solve(release_notebook(), {**CORRECT, "initialize_parameters_zeros": WRONG_ZEROS,
                                                     "initialize_parameters_random": PROBE_PRELOAD,
                                                     "initialize_parameters_he": ENDLESS}))
    (result,) = run_coursekit(course)
    cells = graded_cells(result)
    assert cells["test_random_public"] == 1  # colorsys was preloaded
    assert cells["test_he_public"] == 0 and "timeout after 15 s" in result["reason"]
    shown = autograded_traceback(course, "s1", "test_zeros_public")
    assert "public_tests.py" not in shown and "has shape (2, 2), expected (2, 3)" in shown


def test_the_package_exports_its_python_api_and_version():
    assert {"autograde", "Summary", "GradedSubmission", "CourseError", "PlanError",
            "SandboxError"} <= set(coursekit.__all__)
    for name in coursekit.__all__:
        assert getattr(coursekit, name) is not None
    assert issubclass(coursekit.PlanError, coursekit.CourseError)
    proc = subprocess.run([sys.executable, "-m", "coursekit", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip() == f"coursekit {coursekit.__version__}"
    assert (Path(coursekit.__file__).parent / "py.typed").is_file()


def test_the_installed_libraries_a_master_imports_are_preloaded_and_nothing_else():
    """A course that lists no preload still gets its libraries imported once per sandbox: those its
    master imports from site-packages, not the standard library or the course's own modules."""
    sources = ["import numpy as np\nimport json, os.path\n", "from matplotlib import pyplot as plt\n",
               "def f():\n    import public_tests\n    from . import nothing\n    return np\n",
               "%matplotlib inline\nimport nbformat.v4\n"]
    cells = [MasterCell(i, f"c{i}", "code", "locked", source, {}) for i, source in enumerate(sources)]
    plan = AssignmentPlan("a", "a", cells, graded={}, trusted=[], skipped=[], tests_of={})
    assert installed_imports(plan, TransformerManager().transform_cell) == ("numpy", "matplotlib", "nbformat.v4")
