"""Stage 4, score: grading by replay.

1. Once per assignment, in the grader's (trusted) process, every master test cell runs with
   the graded names bound to the master's solutions wrapped in a recorder.  That yields the
   call plan: which graded function each test cell calls, in order, with which arguments.
2. Per submission, the sandbox makes all planned calls on the student's code in one run and
   returns plain data (`coursekit.sandbox`).
3. Here again, each master test cell runs once more with the graded names bound to replay
   stubs that hand back the sandbox's recorded results in order (reproducing mutation of the
   arguments, re-raising the student's exceptions).  A cell earns its points under nbgrader's
   own rule (`nbgrader.utils.determine_grade`: full points unless it raised or wrote to stderr).
4. The outcomes, the autograded notebook and the reasons become the worker's answer,
   `GradedSubmission` (`graded`, or `zero` for a submission that cannot be graded), plain data
   that the grader's gradebook stage stores.

Student code never runs in this process; the comparisons run with this process's NumPy and the
course's own trusted helper modules (``c.CourseKit.trusted_modules``, e.g. public_tests.py).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import json
import os
import pickle
import re
import signal
import sys
import threading
import traceback
import warnings
from collections import OrderedDict, deque
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Sequence

import nbformat
import numpy as np
from nbformat import NotebookNode
from nbgrader.utils import compute_checksum, determine_grade

from . import sandbox
from .extract import AssignmentPlan, LockedCellFails, grade_id_of, last_copies
from .read import Submission
from .sandbox import MAX_DEPTH, Shell, clean_text

# Test cells print through sys.stdout, which is one per process: replay one cell at a time
# even when a Dask worker runs several tasks in threads.
MAX_REASON = 4000  # characters of a submission's reason kept
_REPLAY_LOCK = threading.Lock()


@dataclass(frozen=True)
class GradedSubmission:
    """What a worker returns for one submission: plain data, cheap to send between machines."""

    submission: Submission
    scores: dict[str, float]  # test grade id -> score
    max_scores: dict[str, float]
    messages: dict[str, str | None]  # test grade id -> failure message
    unanswered: tuple[str, ...]  # solution cells left as the release stub (nbgrader's "No response.")
    notebook: bytes  # the autograded notebook's file: UTF-8 JSON, encoded once, in the worker
    reason: str  # everything worth telling the instructor, in words
    modes: dict[str, str] = field(default_factory=dict)  # test grade id -> one of MODES; missing: "replay"
    # manually graded answer cells -> 0 when left as released ("No response."), None when answered
    manual_scores: dict[str, float | None] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())


@dataclass(frozen=True)
class CellOutcome:
    grade_id: str
    score: float
    max_score: float
    outputs: list  # nbformat outputs, as Jupyter would show them
    message: str | None  # the failure, e.g. "AssertionError: W1 has shape (3, 2) ..."
    mode: str = "replay"  # "replay": compared in the grader; "sandbox": the test cell ran in the sandbox


def trusted_namespace(plan: AssignmentPlan, folder: Path, python: Callable[[str], str]) -> dict:
    """The globals the test cells start from: the needed locked cells (e.g. setup), executed
    here with the course's own trusted modules (from the master folder), written to
    `folder`, which goes first on sys.path.  `folder` is the assignment's folder as the
    notebook sees it in a kernel: every file of the release but the notebooks, with the trusted
    modules over them (nbgrader's autograde puts the master's files over the submission's), and
    the locked cells run in it (`in_folder`), so that `open("data.csv")` finds the file beside
    the notebook.  The caller (the worker) keeps and copies the namespace."""
    for name, data in [*((n, d) for n, d in plan.release_files.items() if not n.endswith(".ipynb")),
                       *plan.trusted_files.items()]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. locale/tr/LC_MESSAGES/
        (folder / name).write_bytes(data)
    for module in (Path(name).stem for name in plan.trusted_files):
        sys.modules.pop(module, None)  # never reuse a module of the same name from elsewhere
    sys.path.insert(0, str(folder))
    namespace: dict = {"__name__": "__main__"}
    shell = Shell(namespace)
    namespace["get_ipython"] = lambda: shell
    with in_folder(folder):
        for index in plan.trusted:
            cell = plan.cells[index]
            label = cell.grade_id or f"cell {index + 1}"
            errors = [o for o in run_cell(python(cell.source), namespace, f"<{label}>", shown=_traceback_files(plan))
                      if o.output_type == "error"]
            if errors:  # the tests that need it run in the sandbox instead (pipeline.plan_notebook)
                raise LockedCellFails(index, f"the locked cell {label} it needs fails in the grader "
                                             f"({errors[0].ename}: {errors[0].evalue})")
    return namespace


@contextmanager
def in_folder(folder: Path | None):
    """Run trusted cells in the assignment's folder (`trusted_namespace`), as a kernel started
    beside the notebook does; back where we were afterwards.  None: stay."""
    if folder is None:
        yield
        return
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def record_calls(plan: AssignmentPlan, namespace: dict, python: Callable[[str], str],  # noqa: C901 (one pass over the test cells in order, each reason written where it is found)
                 folder: Path | None = None) -> None:
    """Fill `plan.calls` by running the master's tests against the master's solutions, in
    `namespace` (a copy of the trusted one) and in `folder` (`trusted_namespace`'s).  A test
    whose calls replay cannot stand in for goes to `plan.sandboxed` instead, with the reason:
    it will run in the sandbox, in its place.  That is a test that calls a graded function with
    keyword arguments or arguments that are not plain data, whose graded function calls another
    or returns something that is not plain data (a generator, an object of the master's own
    class: the test would use it, not a copy), that draws with Matplotlib (the test looks at the
    figure, not at a returned value), or that reads the function object itself (`_introspects`:
    `inspect.getsource(f)`, `f.__doc__`)."""
    _run_solutions(plan, namespace, python)
    current: list[sandbox.Call] = []
    why: list[str] = []  # why the current test cannot be replayed
    depth = [0]

    def recorder(function: str, solution: Callable) -> Callable:
        def record(*args: Any, **kwargs: Any) -> Any:
            if depth[0]:
                why.append(f"a graded function it calls calls {function}")
            elif kwargs:
                why.append(f"it calls {function} with keyword arguments")
            else:
                try:
                    current.append(sandbox.Call(function, tuple(_jsonable(args)), secret))
                except (TypeError, ValueError):
                    why.append(f"it calls {function} with arguments that are not plain data")
            depth[0] += 1
            try:
                return _solution_call(function, solution, args, kwargs, why)
            finally:
                depth[0] -= 1
        record.__name__ = record.__qualname__ = function
        return record

    for function in plan.graded:
        namespace[function] = recorder(function, namespace[function])
    # A test's calls are public when anyone can read them in the release: no hidden tests in
    # the cell, and the course modules the tests import are the released ones.
    helpers_released = all(plan.release_files.get(name) == data for name, data in plan.trusted_files.items())
    secret = True
    for test in plan.tests:
        if test.id in plan.sandboxed:
            continue  # it reads what only the student's notebook defines: nothing to record
        secret = not helpers_released or "BEGIN HIDDEN TESTS" in test.source
        current.clear()
        why.clear()
        code = python(test.source)
        with in_folder(folder):
            outputs = run_cell(code, namespace, f"<{test.id}>", shown=_traceback_files(plan))
        reason = _not_replayable(outputs, why, code, plan.graded)
        if reason:
            plan.sandboxed[test.id] = reason
        else:
            plan.calls[test.id] = list(current)


def _solution_call(function: str, solution: Callable, args: tuple, kwargs: dict, why: list[str]) -> Any:
    """The master's solution called for the call plan; what replay could not stand in for (a
    figure drawn, a value that is not plain data) goes into `why`."""
    figures = _figure_marks()
    try:
        value = solution(*args, **kwargs)
    finally:
        if _drew(figures):
            why.append(f"{function} draws with Matplotlib, and a figure is not plain data")
    if not plain(value):
        why.append(f"{function} returns a {type(value).__name__} object, which is not plain data")
    return value


def _run_solutions(plan: AssignmentPlan, namespace: dict, python: Callable[[str], str]) -> None:
    """The master's solution cells that define graded functions, run in `namespace`."""
    for grade_id in dict.fromkeys(plan.graded.values()):
        solution = plan.cell(grade_id).solution
        assert solution is not None, grade_id  # plan.graded names solution cells only
        exec(compile(python(solution), f"<{grade_id}>", "exec"), namespace)


def _not_replayable(outputs: list, why: list[str], code: str, graded: dict[str, str]) -> str | None:
    """Why a master test recorded with the master's solutions must run in the sandbox, if it must."""
    failed = [o for o in outputs if o.output_type == "error"]
    if failed:  # graded as a kernel runs it; pipeline.check_master warns the instructor
        return f"it fails with the master's solution in the grader ({failed[0].ename}: {failed[0].evalue})"
    return why[0] if why else _introspects(code, graded)


_PLAIN_SCALARS = (type(None), bool, int, float, str)
_PLAIN_DTYPES = frozenset("biuf")


def plain(value: Any, depth: int = 0) -> bool:
    """Whether a value crosses the sandbox unchanged (protocol.py): plain Python data and NumPy
    arrays and scalars of numbers, of exactly these types (a subclass would come back as its base)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if depth > MAX_DEPTH:
        return False
    if kind is np.ndarray or isinstance(value, np.generic):
        return value.dtype.kind in _PLAIN_DTYPES
    if kind in (list, tuple, set, frozenset):
        return all(plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(plain(k, depth + 1) and plain(v, depth + 1) for k, v in value.items())
    return False


def _figure_marks() -> list[int] | None:
    """The open Matplotlib figures (None if pyplot was never imported), each marked as drawn."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return None
    figures = [manager.canvas.figure for manager in _figure_managers()]
    for figure in figures:
        figure.stale = False  # any change to it or its axes makes it stale again
    return [id(figure) for figure in figures]


def _close_figures() -> None:
    """A kernel closes the figures a cell made when the cell ends (the inline backend's
    lifecycle, coursekit/sandbox/_runner.py), so a trusted cell run here does too."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and _figure_managers():
        pyplot.close("all")


def _figure_managers() -> list:
    from matplotlib._pylab_helpers import Gcf

    return Gcf.get_all_fig_managers()


def _drew(before: list[int] | None) -> bool:
    """Whether a figure was made, closed or changed since `_figure_marks` gave `before`."""
    if "matplotlib.pyplot" not in sys.modules:
        return False
    figures = [manager.canvas.figure for manager in _figure_managers()]
    return [id(f) for f in figures] != (before or []) or any(f.stale for f in figures)


# Callables that read a function object itself (its code, source, signature, documentation),
# which a replay stub cannot stand in for.
_INTROSPECTION = frozenset({"inspect", "dis", "getsource", "getsourcelines", "getsourcefile", "getfile",
                            "getdoc", "getcomments", "getmodule", "signature", "getfullargspec", "help",
                            "isgeneratorfunction", "iscoroutinefunction", "isasyncgenfunction",
                            "isfunction", "ismethod", "isbuiltin", "isroutine", "unwrap", "vars"})


def _introspects(code: str, graded: dict[str, str]) -> str | None:
    """Why a test cell needs the graded function object itself, or None: it reads one of its
    attributes (`f.__doc__`), or hands it to inspect, dis, help or the like."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in graded:
            return f"it reads {node.value.id}.{node.attr}, an attribute of the function itself"
        if isinstance(node, ast.Call) and _callee_names(node.func) & _INTROSPECTION:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Name) and arg.id in graded:
                    return f"it inspects the function {arg.id} itself ({ast.unparse(node.func)})"
    return None


def _callee_names(func: ast.expr) -> set[str]:
    names = set()
    while isinstance(func, ast.Attribute):
        names.add(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        names.add(func.id)
    return names


class OpaqueValueError(TypeError):
    """A test used a value that could not leave the sandbox."""


class _Opaque:
    """Stands for a returned object that is not plain data (a generator, an object of the
    student's own class, ...): any use beyond printing it fails the test with a message that
    says so, rather than comparing quietly unequal."""

    def __init__(self, type_name: str) -> None:
        object.__setattr__(self, "type_name", type_name)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise OpaqueValueError(f"the function returned a {self.type_name} object, which cannot leave the sandbox "
                               "as plain data (numbers, strings, lists, tuples, sets, dicts, NumPy arrays), so this "
                               "test cannot check it")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = __bool__ = __len__ = __iter__ = _refuse
    __getitem__ = __contains__ = __call__ = __add__ = __sub__ = __mul__ = __truediv__ = __float__ = __int__ = _refuse
    __array__ = _refuse

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._refuse()

    def __repr__(self) -> str:
        return f"<{self.type_name} object (not plain data, stayed in the sandbox)>"


def _trusted(value: Any) -> Any:
    if isinstance(value, sandbox.Opaque):
        return _Opaque(getattr(value, "type_name", "unknown"))
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_trusted(v) for v in value)
    return value  # sets and keys hold only hashable values: an opaque one stays the sandbox's marker


def _exception(error: str | None) -> Exception:
    """Rebuild the student's exception: a builtin type by name, else a same-named stand-in."""
    name, _, message = (error or "Exception: (no message)").partition(": ")
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = type(name if re.fullmatch(r"[A-Za-z_]\w*", name) else "StudentError", (Exception,), {})
    return cls(message)


def _changed_in_place(passed: Any, after: Any) -> None:
    """Make the test's argument what the student's function left it as (lists, dicts, sets),
    as a kernel's test would see it after the call."""
    if type(passed) is not type(after) or passed == after:
        return
    if isinstance(passed, list):
        passed[:] = after
    elif isinstance(passed, (dict, set)):
        passed.clear()
        passed.update(after)


def _replay_stub(function: str, queue: deque, reason: str | None) -> Callable:
    def replay(*args: Any, **kwargs: Any) -> Any:
        if kwargs or not queue:
            raise AssertionError(f"coursekit: the test called {function}{args!r} in a way the call plan "
                                 "recorded with the master solution did not foresee")
        planned, result = queue.popleft()
        if planned.function != function or _jsonable(args) != _jsonable(list(planned.args)):
            raise AssertionError(f"coursekit: the test called {function}{args!r}, but the plan expected "
                                 f"{planned.function}{tuple(planned.args)!r}")
        for passed, after in zip(args, result.args_after or ()):
            _changed_in_place(passed, after)
        # What the call printed appears in the test cell's output, stderr included (which, as
        # in nbgrader, costs the cell its points).
        if result.stdout:
            sys.stdout.write(result.stdout)
        if result.stderr:
            sys.stderr.write(result.stderr)
        if result.status == "ok":
            return _trusted(result.value)
        if result.status == "error":
            raise _exception(result.error)
        if result.status == "missing":
            raise NameError(f"name {function!r} is not defined")
        raise RuntimeError(f"{function} did not run: {reason or 'the sandbox stopped before this call'}")
    replay.__name__ = replay.__qualname__ = function
    return replay


# Outputs that depend on the grading process's state (its clock, load, memory or stack), not on
# the recorded results alone: a cell that shows one is never reused for another submission.
_UNREPEATABLE = frozenset({"ReplayTimeout", "MemoryError", "RecursionError"})


class ReplayCache:
    """Replayed test cells' outputs, reused when another submission recorded the same results.

    A replayed test cell is trusted code run on plain data: given the plan, its calls' recorded
    results (values, printed text, errors, arguments after the call) and the run's reason, it
    prints and raises the same things every time, provided that nothing else it sees changed:
    only cells `independent_tests` admits are kept (no other test cell reads what they bind or
    change in place, and they read nothing another test cell binds or changes).  The key is a
    digest of those inputs pickled (equal bytes: equal values, types and aliasing; a -0.0 or a
    NaN's payload only misses); the outputs are kept pickled, so that every submission gets
    its own copy to put into its notebook.  In a class most results repeat (every correct
    answer; each common mistake), and a hit skips the cell's assertions and its failure's
    message, which are most of a worker's own work.  At most `size` cells, least recently used
    out first."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._outputs: OrderedDict[bytes, bytes] = OrderedDict()
        self._independent: dict[tuple, frozenset[str]] = {}

    def independent_tests(self, plan: AssignmentPlan) -> frozenset[str]:
        """The plan's replayed test cells whose outputs depend only on their own calls."""
        key = (plan.key, tuple(sorted(plan.sandboxed)))  # a rerun's plan sandboxes more tests
        if key not in self._independent:
            tests = [t for t in plan.tests if t.id not in plan.sandboxed]
            # what a test changes (a graded function handed to a helper is not changed), and what
            # it takes from outside: what it reads, or changes without having bound it itself
            changed = {t.id: t.names.changes(plan.modules) - (t.names.passes & set(plan.graded))
                       for t in tests if t.names}
            outside = {t.id: t.names.reads | (changed[t.id] - t.names.defines) for t in tests if t.names}
            touched = {t.id: t.names.binds | changed[t.id] for t in tests if t.names}
            self._independent[key] = frozenset(
                t.id for t in tests
                if t.names is not None and not t.names.dynamic and not t.names.reads_all
                and not any(other.names is None or other.names.dynamic or other.names.reads_all
                            or outside[t.id] & touched[other.id] or outside[other.id] & touched[t.id]
                            for other in tests if other is not t))
        return self._independent[key]

    def __len__(self) -> int:
        return len(self._outputs)

    def get(self, key: bytes) -> list | None:
        kept = self._outputs.get(key)
        if kept is None:
            return None
        self._outputs.move_to_end(key)
        return pickle.loads(kept)

    def put(self, key: bytes, outputs: list) -> None:
        if any(output.get("ename") in _UNREPEATABLE for output in outputs):
            return
        self._outputs[key] = pickle.dumps(outputs, protocol=pickle.HIGHEST_PROTOCOL)
        if len(self._outputs) > self.size:
            self._outputs.popitem(last=False)


def _replay_key(plan: AssignmentPlan, test: str, calls: list, reason: str | None) -> bytes | None:
    try:
        data = pickle.dumps((plan.key, test, reason, [result for _, result in calls]),
                            protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a value pickle refuses: replay it without the cache
        return None
    return hashlib.blake2b(data).digest()


def replay(plan: AssignmentPlan, result: sandbox.SandboxResult, order: Sequence[str], namespace: dict,
           python: Callable[[str], str], compiled: Callable | None = None,
           cache: ReplayCache | None = None, folder: Path | None = None) -> list[CellOutcome]:
    """Score every test cell from the sandbox's recorded results.  `result.calls` hold the
    calls of the tests in `order` (the submission's order); `namespace` is a fresh copy of
    the trusted namespace, and the cells run in its `folder`.  With a `cache`, a test cell
    whose inputs an earlier submission had already is not run again (`ReplayCache`)."""
    results = iter(result.calls)
    by_test = {test: [(call, next(results)) for call in plan.calls[test]] for test in order
               if test not in plan.sandboxed}
    ran = {t.label: t for t in result.tests}
    outcomes = []
    with _REPLAY_LOCK, in_folder(folder):
        independent = cache.independent_tests(plan) if cache is not None else frozenset()
        for test in plan.tests:
            if test.id in plan.sandboxed:  # it ran in the sandbox, in its place
                outputs = _sandbox_outputs(ran.get(test.id), result.reason)
                outcomes.append(_outcome(test.id, test.nbgrader, test.points or 0.0, outputs, "sandbox"))
                continue
            calls = by_test.get(test.id, [])
            key = _replay_key(plan, test.id, calls, result.reason) if test.id in independent else None
            kept = cache.get(key) if cache is not None and key is not None else None
            if kept is not None:
                outcomes.append(_outcome(test.id, test.nbgrader, test.points or 0.0, kept))
                continue
            queue = deque(calls)
            for function in plan.graded:
                namespace[function] = _replay_stub(function, queue, result.reason)
            outputs = run_cell(python(test.source), namespace, f"<{test.id}>", compiled, REPLAY_SECONDS,
                               _traceback_files(plan))
            if cache is not None and key is not None:
                cache.put(key, outputs)
            outcomes.append(_outcome(test.id, test.nbgrader, test.points or 0.0, outputs))
    return outcomes


def tests_needing_the_sandbox(plan: AssignmentPlan, order: Sequence[str], result: sandbox.SandboxResult
                              ) -> dict[str, str]:
    """Replayed test cells (in `order`, the submission's) whose calls returned something that
    is not plain data (a generator, an object of the student's own class), with why: replay
    could only hand the test an opaque stand-in, which fails where a kernel's test might pass
    (`list(evens(xs))` on a generator), so they are graded again in the sandbox, in their place
    (the pipeline reruns the submission with them as `plan.sandboxed`)."""
    results = iter(result.calls)
    found: dict[str, str] = {}
    for test in order:
        if test in plan.sandboxed:
            continue
        for call in plan.calls[test]:
            got = next(results, None)
            opaque = _opaque_in(got.value) if got is not None and got.status == "ok" else None
            if opaque is not None and test not in found:
                found[test] = (f"{call.function} returned a {opaque} object, which is not plain data; "
                               "the test ran in the sandbox")
    return found


def _opaque_in(value: Any) -> str | None:
    """The type name of the first opaque value inside a decoded result, or None."""
    if isinstance(value, sandbox.Opaque):
        return value.type_name
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found = _opaque_in(item)
            if found is not None:
                return found
    return None


def _sandbox_outputs(ran: sandbox.TestResult | None, reason: str | None) -> list:
    """The outputs of a test cell that ran in the sandbox, as Jupyter shows them."""
    if ran is None or ran.status != "ran":
        why = reason or "the sandbox stopped before this test"
        return [new_output("error", ename="SandboxStopped", evalue=why, traceback=[f"SandboxStopped: {why}"])]
    outputs = []
    for output in ran.outputs:
        if "stream" in output:
            outputs.append(new_output("stream", name=output["stream"], text=output["text"]))
        else:
            ename, evalue, trace = output["error"]
            outputs.append(new_output("error", ename=ename, evalue=evalue,
                                      traceback=["Traceback (most recent call last):", *trace,
                                                 f"{ename}: {evalue}" if evalue else ename]))
    return outputs


def failed_outcomes(plan: AssignmentPlan, reason: str) -> list[CellOutcome]:
    """Every test cell at zero, with the same reason (the notebook could not be read)."""
    error = new_output("error", ename="CoursekitError", evalue=reason, traceback=[f"CoursekitError: {reason}"])
    return [_outcome(t.id, t.nbgrader, t.points or 0.0, [error]) for t in plan.tests]


def new_output(output_type: str, **fields: Any) -> nbformat.NotebookNode:
    """An output as nbformat would make it, without its per-object schema validation (hot path)."""
    if output_type == "execute_result":
        fields.setdefault("metadata", {})
    return nbformat.from_dict({"output_type": output_type, **fields})


def new_cell(cell_type: str, source: str = "", metadata: dict | None = None) -> nbformat.NotebookNode:
    """A cell as nbformat.from_dict would make it of these fields (metadata copied), built
    directly: an autograded notebook's restored cells, most of its cells, are made this way."""
    return _cell(cell_type, source, _node(metadata) if metadata else NotebookNode())


def _cell(cell_type: str, source: str, metadata: NotebookNode) -> NotebookNode:
    """A cell of these fields, `metadata` taken as it is (not copied)."""
    cell = NotebookNode(cell_type=cell_type, metadata=metadata, source=source)
    if cell_type == "code":
        dict.update(cell, outputs=[], execution_count=None)
    return cell


def _node(value: dict) -> NotebookNode:
    """nbformat.from_dict(value): a copy made of NotebookNodes, in one step when it holds no container."""
    if any(map(isinstance, value.values(), repeat((dict, list, tuple)))):
        return nbformat.from_dict(value)
    return NotebookNode(value)


def _outcome(grade_id: str, metadata: dict, points: float, outputs: list, mode: str = "replay") -> CellOutcome:
    cell = new_cell("code", metadata={"nbgrader": dict(metadata, points=points)})
    cell.outputs = outputs
    score, max_score = determine_grade(cell)
    message = None
    for output in outputs:
        if output.output_type == "error":
            message = f"{output.ename}: {output.evalue}" if output.evalue else output.ename
        elif output.output_type == "stream" and output.name == "stderr" and message is None:
            message = f"wrote to stderr: {output.text.strip()[:300]}"
    return CellOutcome(grade_id, float(score or 0.0), float(max_score), outputs, message, mode)


def compile_cell(code: str, label: str) -> tuple[Any, Any]:
    """A cell compiled: its statements, and its last expression (shown like Jupyter does)."""
    tree = ast.parse(code)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return compile(tree, label, "exec"), None
    tree.body.pop()
    return compile(tree, label, "exec"), compile(ast.Expression(last.value), label, "eval")


def _traceback_files(plan: AssignmentPlan) -> frozenset[str]:
    """The trusted helper files whose frames a failing test's traceback shows."""
    return frozenset(name for name in plan.trusted_files if plan.settings.shows_frames_of(name))


REPLAY_SECONDS = 10.0  # one test cell replayed in the grader (the master's take milliseconds)
OUTPUT_CHARS = 100_000  # kept per stream and per result of one replayed test cell


class ReplayTimeout(Exception):
    """A replayed test cell ran past REPLAY_SECONDS in the grader."""


class _Bounded(io.StringIO):
    """Keeps the first OUTPUT_CHARS characters written, and says when it dropped the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = False

    def write(self, text: str) -> int:
        room = OUTPUT_CHARS - self.tell()
        if len(text) > room:
            self.cut = True
            text = text[:max(room, 0)]
        return super().write(text) if text else 0

    def text(self) -> str:
        return self.getvalue() + ("\n... (output cut by coursekit)\n" if self.cut else "")


@contextmanager
def _time_limit(seconds: float | None):
    """Raise ReplayTimeout in this code after `seconds` (main thread only: a Dask worker's
    task threads have no signals, and rely on the worker's own limits)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ReplayTimeout(f"replaying this test cell took more than {seconds:g} s in the grader")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cell(code: str, namespace: dict, label: str, compiled: Callable | None = None,
             seconds: float | None = None, shown: frozenset[str] = frozenset()) -> list:
    """Run trusted cell code (already turned into Python) as a kernel would; the outputs
    Jupyter would show, each capped at OUTPUT_CHARS, within `seconds`.  A traceback shows the
    cell's own lines and those of the trusted helper files in ``shown``."""
    stdout, stderr = _Bounded(), _Bounded()
    error = value = None
    text = None
    with redirect_stdout(stdout), redirect_stderr(stderr), warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            with _time_limit(seconds):
                body, last = (compiled or compile_cell)(code, label)
                exec(body, namespace)
                if last is not None:
                    value = eval(last, namespace)
                    if value is not None:
                        text = repr(value)[:OUTPUT_CHARS]
        except Exception as exc:  # the cell fails; its error is an output, as in Jupyter
            error = exc
        finally:
            _close_figures()
    outputs = [new_output("stream", name=name, text=clean_text(buffer.text()))
               for name, buffer in (("stdout", stdout), ("stderr", stderr)) if buffer.getvalue() or buffer.cut]
    if text is not None:
        outputs.append(new_output("execute_result", data={"text/plain": clean_text(text)}, execution_count=None))
    if error is not None:
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if f.filename == label or Path(f.filename).name in shown]
        lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
        outputs.append(new_output("error", ename=type(error).__name__, evalue=clean_text(str(error)[:OUTPUT_CHARS]),
                                  traceback=["Traceback (most recent call last):"]
                                  + [clean_text(line.rstrip("\n"))[:OUTPUT_CHARS] for line in lines]))
        # The error's traceback holds this frame, which holds the error: a cycle that would keep
        # the cell's objects, and the frames of its callers (the whole submission), until the
        # garbage collector runs.  Dropping the error here frees them now.
        error = None
    return outputs


def autograded_notebook(nb: nbformat.NotebookNode | None, plan: AssignmentPlan,
                        outcomes: list[CellOutcome]) -> nbformat.NotebookNode:
    """The student's notebook (changed in place) as graded: outputs cleared, locked and test cells restored from
    the gradebook with nbgrader metadata, each test cell showing its replayed outputs.
    Without a readable notebook, the master's layout with the solution cells left as stubs."""
    by_id = {o.grade_id: o for o in outcomes}
    if nb is None:
        nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                 "cells": [_master_cell(c, None, plan.checksums.get(c.grade_id) if c.grade_id else None)
                                           for c in plan.cells]})
    seen: set[str] = set()
    known = {c.grade_id: c for c in plan.cells if c.grade_id}
    kept = last_copies(nb.cells)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        grade_id = grade_id_of(cell)
        if grade_id is None or kept.get(grade_id) != index or grade_id not in known:
            # as nbgrader's DeduplicateIds / OverwriteCells; metadata of the wrong shape goes too
            cell.get("metadata", {}).pop("nbgrader", None)
            continue
        seen.add(grade_id)
        master = known[grade_id]
        if master.nbgrader.get("locked"):
            nb.cells[index] = _master_cell(master, by_id.get(grade_id), plan.checksums.get(grade_id))
        else:
            if cell.cell_type != master.cell_type:  # e.g. a solution cell turned into markdown
                nb.cells[index] = cell = new_cell(master.cell_type, cell.source, cell.metadata)
            cell.metadata["nbgrader"] = dict(master.nbgrader, checksum=plan.checksums.get(grade_id))
    # Test cells the student deleted come back after the cell that precedes them in the master.
    for test in plan.tests:
        if test.id in seen:
            continue
        before = [c.grade_id for c in plan.cells[:test.index] if c.grade_id in seen]
        ids = [grade_id_of(c) for c in nb.cells]
        at = ids.index(before[-1]) + 1 if before else len(nb.cells)
        nb.cells.insert(at, _master_cell(test, by_id.get(test.id), plan.checksums.get(test.id)))
        seen.add(test.id)
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):  # cell ids are required from nbformat 4.5 on
        missing = [cell for cell in nb.cells if "id" not in cell]
        # Random ids as nbformat draws them (8 hex digits, generate_corpus_id), all from one read of os.urandom.
        digits = os.urandom(4 * len(missing)).hex()
        for i, cell in enumerate(missing):
            cell["id"] = digits[8 * i:8 * i + 8]
    return nb


def notebook_file(nb: dict) -> bytes:
    """The autograded notebook's file: compact JSON (json's C encoder writes it; ``indent``
    would take the pure-Python one, 3x slower), UTF-8, a lone surrogate (which no file can
    hold) written as '?'.  Encoded once, in the worker: the grader writes these bytes as they are."""
    return (json.dumps(nb, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "replace")


def _master_cell(master: Any, outcome: CellOutcome | None, checksum: str | None) -> nbformat.NotebookNode:
    """A master cell as nbgrader restores it (the gradebook's source, so solutions stay stubs);
    a graded test cell says how coursekit graded it (metadata coursekit.mode)."""
    meta = NotebookNode(nbgrader=_node(dict(master.nbgrader, checksum=checksum)))
    if outcome:
        dict.__setitem__(meta, "coursekit", NotebookNode(mode=outcome.mode))
    cell = _cell(master.cell_type, master.source, meta)
    if master.cell_type == "code" and outcome:
        cell.outputs = outcome.outputs
    return cell


# ----------------------------------------------------------------------------- the worker's answer

def graded(plan: AssignmentPlan, submission: Submission, outcomes: list[CellOutcome],
           graded_nb: NotebookNode, notes: list[str], cell_failures: bool = True) -> GradedSubmission:
    """What a worker returns for one submission: its cells' outcomes, the autograded notebook and
    `notes` (everything worth telling the instructor) as plain data."""
    failures = [f"{o.grade_id}: {o.message}" for o in outcomes
                if cell_failures and o.score < o.max_score and o.message]
    reason = "; ".join(notes + failures)
    answers = set(plan.answer_cells)
    unanswered = tuple(dict.fromkeys(
        grade_id for c in graded_nb.cells if (grade_id := grade_id_of(c)) in answers
        and compute_checksum(c) == plan.checksums.get(grade_id)))
    # A manually graded answer left as released scores 0 with "No response.", as in nbgrader;
    # an answered one waits for a person (no auto score).
    manual = {gid: (0.0 if gid in unanswered else None) for gid in plan.manual}
    # Lone surrogates (a "\ud800" in the JSON) cannot be stored in a file or a database: '?' instead.
    return GradedSubmission(
        submission=submission,
        scores={o.grade_id: o.score for o in outcomes},
        max_scores={o.grade_id: o.max_score for o in outcomes},
        messages={o.grade_id: o.message and clean_text(o.message) for o in outcomes},
        unanswered=unanswered,
        modes={o.grade_id: o.mode for o in outcomes},
        manual_scores=manual,
        notebook=notebook_file(graded_nb),
        reason=clean_text(reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + " ..."),
    )


def zero(plan: AssignmentPlan, submission: Submission, notes: list[str]) -> GradedSubmission:
    """A submission that scores 0 in every test cell, for the reason `notes[-1]` (unreadable,
    refused, too slow to read): the reason is each cell's message."""
    reason = notes[-1]
    outcomes = failed_outcomes(plan, reason)
    graded_nb = autograded_notebook(None, plan, outcomes)
    return graded(plan, submission, outcomes, graded_nb, notes, cell_failures=False)
