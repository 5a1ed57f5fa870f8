"""What coursekit decides once per assignment (which cells the tests need, which calls they
make), the static analysis behind it, and the command line."""

from __future__ import annotations

import ast
import json
import os
import pty
import subprocess
import sys

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from coursekit.extract import MasterCell, plan_assignment, replay_plan
from coursekit.names import analyze, analyze_source, python_source
from coursekit.pipeline import Worker, grade_submission, plan_notebook
from coursekit.read import Submission, load_course
from coursekit.score import GradedSubmission
from scripts import make_class
from scripts.course import ASSIGNMENT, ROOT
from scripts.student_work import CORRECT, solve
from tests.helpers import copy_course, generate_assignment, nbgrader_env, new_course


def names_of(source: str):
    return analyze(ast.parse(source))


def test_a_for_loop_variable_is_bound_inside_its_body():
    names = names_of("for dims in cases:\n    print(dims)\n")
    assert names.reads == {"cases", "print"} and "dims" in names.binds


def test_a_name_bound_only_under_an_if_still_counts_as_read_afterwards():
    assert "x" in names_of("if flag:\n    x = 1\nprint(x)\n").reads


def test_function_locals_and_parameters_are_not_reads_but_its_globals_are():
    names = names_of("def f(a):\n    b = a + 1\n    return np.sum(b) + helper(a)\n")
    assert names.reads == {"np", "helper"} and names.binds == {"f"}


def test_comprehension_variables_stay_inside_the_comprehension():
    assert names_of("y = [k for k in keys if k]\nprint(k)\n").reads == {"keys", "print", "k"}


def test_star_imports_and_exec_make_a_cell_dynamic():
    assert names_of("from numpy import *\n").dynamic
    assert names_of("exec('x = 1')\n").dynamic


def test_magics_become_what_ipython_runs_and_a_cell_magic_body_is_analysed():
    ipython = TransformerManager()
    assert python_source("%matplotlib inline\nx = 1\n!ls", ipython) == (
        "get_ipython().run_line_magic('matplotlib', 'inline')\nx = 1\nget_ipython().system('ls')\n")
    assert python_source("%%time\n%time y = 2\nx = 1", ipython) == (
        "get_ipython().run_cell_magic('time', '', \"get_ipython().run_line_magic('time', 'y = 2')\\nx = 1\\n\")\n")
    assert analyze_source("%%time\ndef f():\n    return np.ones(2)\n").binds == {"f"}


def test_subscript_and_attribute_stores_and_method_statements_count_as_changes():
    names = names_of("CONFIG['dtype'] = np.float64\nopts.seed = 3\nitems.append(4)\nprint(x.y)\n")
    assert names.changes() == {"CONFIG", "opts", "items"} and "CONFIG" in names.reads


def test_a_method_call_or_a_call_handed_the_object_changes_it_even_inside_an_expression():
    assert names_of("age = person.increase_age()\n").changes() == {"person"}
    assert names_of("total = count(shuffle(deck))\n").changes() == {"deck"}
    assert names_of("items += [1]\n").changes() == {"items"}
    assert names_of("print(len(items), repr(items))\n").changes() == set()  # builtins that only look


def test_calling_a_module_function_does_not_change_the_module_but_setting_its_state_does():
    assert names_of("x = np.zeros(3)\nnp.testing.assert_allclose(x, 0)\n").changes({"np"}) == {"x"}
    assert names_of("np.random.seed(1)\n").changes({"np"}) == {"np"}


def test_dir_globals_and_eval_may_read_any_name_and_exec_may_bind_any():
    assert names_of("assert 'answer' in dir()\n").reads_all
    assert not names_of("print(dir(obj))\n").reads_all
    for code in ("globals()['x']\n", "eval('x')\n", "exec('x = 1')\n", "vars()\n"):
        assert names_of(code).reads_all and names_of(code).dynamic, code


def test_magics_are_analysed_as_ipython_runs_them():
    assert analyze_source("%time doubled = double(5)\n").binds == {"doubled"}
    assert "double" in analyze_source("%time doubled = double(5)\n").reads
    assert analyze_source("%%capture out\nprint(1)\n").binds == {"out"}
    quiet = analyze_source("%matplotlib inline\ndouble?\n")
    assert not quiet.dynamic and not quiet.reads_all
    for code in ("!wget data.csv\n", "files = !ls\n", "%%writefile a.py\nx = 1\n", "%run other.py\n"):
        names = analyze_source(code)
        assert names.dynamic and names.reads_all, code
    reset = analyze_source("%reset -f\n")  # deletes any name, reads none
    assert reset.dynamic and not reset.reads_all


def test_only_straight_line_bindings_are_sure():
    assert names_of("if c:\n    x = 1\ny = 2\nz = 3\ndel z\nfor w in ws:\n    pass\n").defines == {"y"}


def _test_cells(*sources: str, kinds: str = "") -> list[MasterCell]:
    """Master cells of these sources: `kinds` gives each one's kind by letter (l locked, s solution,
    t test)."""
    kind = {"l": "locked", "s": "solution", "t": "test"}
    return [MasterCell(i, f"c{i}", "code", kind[k], src, {}, 1.0 if k == "t" else None, names_of(src))
            for i, (k, src) in enumerate(zip(kinds, sources))]


def test_the_nearest_binding_is_followed_and_only_what_replay_reproduces_is_replayed():
    cells = _test_cells("x = 1\nimport math\n", "x = 2\n", "def f(a):\n    return a\n", "assert f(x) == 2\n",
                        "obj.grow()\n", "assert obj.size == 3\n", "y = math.floor(f(2))\n", "assert y == 2\n",
                        kinds="llststlt")
    sandboxed: dict[str, str] = {}
    trusted = replay_plan(cells, {"f": "c2"}, frozenset({"math"}), sandboxed)
    # c3 needs only c1, the nearest binding of x: c0's cannot be seen past it (and the test that
    # reads c0's math goes to the sandbox, through c6, which runs the student's f)
    assert trusted == {1}
    assert sandboxed["c5"].startswith("it reads 'obj', which the solution cell c4 may define or change")
    assert sandboxed["c7"].startswith("it depends on the locked cell c6 (through 'y'), which runs student code (f)")
    assert "None" not in " ".join(sandboxed.values())


def test_only_the_setup_cell_runs_before_the_tests_and_every_demo_cell_is_skipped(template_course):
    plan = plan_assignment(load_course(template_course), ASSIGNMENT, ASSIGNMENT)
    assert [plan.cells[i].grade_id for i in plan.trusted] == ["setup"]
    assert plan.skipped == ["load_data", "model", "train_zeros", "plot_zeros", "symmetry_demo", "plot_constant",
                            "train_random", "plot_random", "saturation_demo", "train_he", "plot_he", "train_small",
                            "small_signal", "train_one", "deep_spreads", "pytorch_default_check", "deep_histograms",
                            "deep_saturating", "results_table", "plot_compare", "explore", "explore_answer"]
    assert plan.graded == {f: f for f in ("initialize_parameters_zeros", "initialize_parameters_random",
                                          "initialize_parameters_he")}
    assert plan.max_score == 9.0


def test_the_call_plan_lists_the_calls_each_test_cell_makes(template_course):
    with Worker() as worker:
        plan = plan_notebook(load_course(template_course), ASSIGNMENT, ASSIGNMENT, worker)
    he = [(c.function, list(c.args)) for c in plan.calls["test_he_public"]]
    # The cell's own call, then public_tests: each case once, and again to check repeatability.
    assert he == [("initialize_parameters_he", [dims]) for dims in
                  ([2, 4, 1], [3, 2, 1], [3, 2, 1], [2, 4, 1], [2, 4, 1], [4, 3, 2, 1], [4, 3, 2, 1])]
    assert [list(c.args) for c in plan.calls["test_he_hidden"]] == [[[5, 3, 4, 2]], [[7, 1]]]
    assert [list(c.args) for c in plan.calls["test_zeros_hidden"]] == [[[6, 5, 4, 3, 2, 1]], [[7, 1]], [[1, 9, 2]]]


def test_a_test_that_reads_a_training_result_is_graded_in_the_sandbox_and_says_why(template_course, tmp_path):
    course = new_course(tmp_path / "course", origin=template_course)
    master = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(master, as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_he_hidden")
    test.source += "\nassert costs_random[0] > 0\n"  # the large-random training ran above this test
    nbformat.write(nb, master)
    generate_assignment(course, "--log-level=ERROR")
    plan = plan_assignment(load_course(course), ASSIGNMENT, ASSIGNMENT)
    assert list(plan.sandboxed) == ["test_he_hidden"]
    assert plan.sandboxed["test_he_hidden"].startswith("it depends via train_")
    assert "which runs student code (initialize_parameters_" in plan.sandboxed["test_he_hidden"]
    # the trainings it needs run in the sandbox, in their place; only setup runs in the grader
    assert [plan.cells[i].grade_id for i in plan.trusted] == ["setup"]


def run_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    coursekit = os.path.join(os.path.dirname(sys.executable), "coursekit")
    return subprocess.run([coursekit, *args], cwd=cwd, env=nbgrader_env(), capture_output=True, text=True, timeout=300)


def test_the_console_script_offers_the_options_of_a_drop_in_for_nbgrader_autograde():
    out = run_cli("autograde", "--help").stdout
    for option in ("ASSIGNMENT", "--course-dir", "--student", "--workers", "--scheduler", "--wall-seconds",
                   "--force", "--json"):
        assert option in out


def test_a_folder_without_nbgrader_config_is_refused_with_what_to_do(tmp_path):
    proc = run_cli("autograde", ASSIGNMENT, "--course-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "nbgrader_config.py" in proc.stderr and "--course-dir" in proc.stderr


def test_an_unknown_assignment_is_refused_with_a_reason(template_course):
    proc = run_cli("autograde", "no-such-assignment", "--course-dir", str(template_course))
    assert proc.returncode == 2 and "no master notebook" in proc.stderr


def test_on_a_terminal_a_progress_bar_is_drawn_on_stderr(template_course, tmp_path):
    course = copy_course(template_course, tmp_path / "course")
    make_class.make_class(course, 3)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT], cwd=course,
                            env=nbgrader_env(), stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the grader exits
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "\r[" in text and "3/3" in text and "submissions/s" in text
    assert "graded 3, skipped 0, failed 0" in text


def test_json_output_is_one_object_per_line_with_the_documented_fields(template_course, tmp_path):
    course = copy_course(template_course, tmp_path / "course")
    make_class.make_class(course, 2)
    proc = subprocess.run([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json"], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert {"student", "notebook", "score", "max_score", "cells", "reason"} <= set(line)
    assert lines[0]["score"] == 9.0  # s000 is correct everywhere


def test_only_test_cells_that_share_no_names_with_another_are_replayed_from_the_cache(template_course):
    # The hidden tests bind the same names in loops (dims, result: a loop may bind nothing, so a
    # later read may see another test's), so each could depend on another: they always run
    # again.  The public ones bind `parameters` before anything reads it, and hand their graded
    # function to a helper, which changes nothing another test reads.
    with Worker() as worker:
        plan = plan_notebook(load_course(template_course), ASSIGNMENT, ASSIGNMENT, worker)
        assert worker.replays.independent_tests(plan) == {"test_zeros_public", "test_random_public",
                                                          "test_he_public"}


def test_a_cached_replay_gives_the_same_grades_and_notebook_and_a_different_result_is_not_served_from_it(
        template_course, tmp_path):
    release = json.loads((template_course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    wrong = dict(CORRECT, initialize_parameters_zeros=CORRECT["initialize_parameters_zeros"].replace(
        "np.zeros((layers_dims[l], 1))", "np.ones((layers_dims[l], 1))"))
    course = load_course(template_course)
    with Worker() as planner:
        plan = plan_notebook(course, ASSIGNMENT, ASSIGNMENT, planner)
    worker = Worker(course.settings.sandbox_preload).start()

    def grade(student: str, bodies: dict) -> GradedSubmission:
        path = tmp_path / student / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir()
        path.write_text(json.dumps(solve(json.loads(json.dumps(release)), bodies)))
        return grade_submission(worker, plan, Submission(student, ASSIGNMENT, ASSIGNMENT, path), path.read_bytes())

    with worker:
        first = grade("first", CORRECT)
        kept = len(worker.replays)
        other, again = grade("other", wrong), grade("again", CORRECT)
        assert len(worker.replays) == 4  # and the wrong zeros' one
    assert kept == 3  # the three public test cells' outputs
    assert first.scores == again.scores and first.messages == again.messages
    assert first.notebook.count(b'"output_type"') == again.notebook.count(b'"output_type"')
    assert first.scores["test_zeros_public"] > 0 and other.scores["test_zeros_public"] == 0.0
    assert other.scores["test_he_public"] == first.scores["test_he_public"] > 0
