"""Stage 2, extract: what a grade needs, from the master (once per assignment) and from each
student notebook.

From the master and the gradebook (never from a submission):
  * the graded functions: top-level ``def``s of the solution cells;
  * the test cells, with the source nbgrader stored in the gradebook (hidden tests included);
  * the locked cells the tests need, found by static name analysis (`coursekit.names`): a
    locked cell is needed when it may bind a name that a test cell, or a cell already needed,
    may read.  Every other locked code cell -- the trainings, plots and demos -- is skipped.
    If a needed cell itself reads a graded function, the tests depend on student code outside
    the test cells, which replay cannot reproduce: planning fails loudly instead of guessing.

From a student notebook: each graded function found by name with `ast` in the code cells,
whatever happened to the cell metadata, plus the top-level statements it needs (imports,
``def``s, classes, assignments), never expression statements such as trainings.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbgrader.api import Gradebook, MissingEntry

from .config import DEFAULTS, Settings
from .names import Names, analysis_source, analyze, analyze_source, python_source
from .read import Course, CourseError
from .sandbox import Cell, Step, Test


class PlanError(CourseError):
    """The assignment cannot be graded by replay; the message says which cell is the problem."""


@dataclass(frozen=True)
class MasterCell:
    index: int
    grade_id: str | None
    cell_type: str
    kind: str  # "solution", "test", "locked" (instructor code), "text"
    source: str  # the gradebook's copy, which nbgrader restores (a stub for solution cells)
    nbgrader: dict  # the master's nbgrader metadata
    points: float | None = None
    names: Names | None = None
    solution: str | None = None  # solution cells: the master's solution, used to record the call plan

    @property
    def id(self) -> str:
        """The grade id of a cell that must have one: nbgrader gives every solution and test
        cell one, and planning refuses a solution cell without."""
        if self.grade_id is None:
            raise PlanError(f"master cell {self.index + 1} is a {self.kind} cell without a grade id: "
                            "give it one in the master and run `nbgrader generate_assignment` again")
        return self.grade_id

    @property
    def reads(self) -> frozenset[str]:
        """Names the cell may read before binding them (none for a text cell)."""
        return self.names.reads if self.names is not None else frozenset()


@dataclass
class AssignmentPlan:
    """Everything about one assignment that does not depend on a submission."""

    assignment: str
    notebook: str
    cells: list[MasterCell]
    graded: dict[str, str]  # graded function -> grade id of its solution cell
    trusted: list[int]  # indices of the locked cells the tests need; run in the grader before the tests
    skipped: list[str]  # locked code cells no test needs (trainings, plots, demos)
    tests_of: dict[str, list[str]]  # graded function -> test cells that read it
    checksums: dict[str, str] = field(default_factory=dict)  # grade id -> gradebook checksum
    calls: dict[str, list] = field(default_factory=dict)  # test grade id -> planned sandbox calls
    # stripped source of a released locked or test cell -> its grade id: recognises cells that
    # lost their metadata (jupyter/nbgrader#1398)
    released_ids: dict[str, str] = field(default_factory=dict)
    # test grade id -> why it runs in the sandbox, in its place, instead of by replay (variables,
    # names the test changes, arguments that are not plain data, graded functions calling others)
    sandboxed: dict[str, str] = field(default_factory=dict)
    manual: dict[str, float] = field(default_factory=dict)  # manually graded answer cells -> points
    release_files: dict[str, bytes] = field(default_factory=dict)  # the sandbox's working folder
    trusted_files: dict[str, bytes] = field(default_factory=dict)  # course modules the tests import
    settings: Settings = DEFAULTS  # the course's c.CourseKit.* (preloads, limits, traceback filter)

    @functools.cached_property
    def key(self) -> str:
        """Identifies the plan's content; workers cache what they derive from a plan under it."""
        digest = hashlib.sha256()
        for cell in self.cells:
            digest.update(cell.source.encode() + (cell.solution or "").encode())
        for name, data in sorted(self.trusted_files.items()) + sorted(self.release_files.items()):
            digest.update(name.encode() + data)
        return digest.hexdigest()[:16]

    def cell(self, grade_id: str) -> MasterCell:
        return next(c for c in self.cells if c.grade_id == grade_id)

    @property
    def tests(self) -> list[MasterCell]:
        return [c for c in self.cells if c.kind == "test"]

    @property
    def max_score(self) -> float:
        return sum(c.points or 0 for c in self.tests)

    def binders(self, name: str) -> list[MasterCell]:
        """Locked code cells that may bind `name`."""
        return [c for c in self.cells if c.kind == "locked" and c.names is not None
                and (name in c.names.binds or c.names.dynamic)]


def _files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob(pattern))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts}


def notebooks_of(course: Course, assignment: str) -> list[str]:
    """The assignment's notebooks: those in the master folder (as nbgrader lists them)."""
    names = sorted(p.stem for p in course.source_dir(assignment).glob("*.ipynb"))
    if not names:
        raise CourseError(f"no master notebook in {course.source_dir(assignment)}: "
                          "is the assignment name right?")
    return names


def plan_assignment(course: Course, assignment: str, notebook: str) -> AssignmentPlan:
    """Read the master and the gradebook, and decide which cells the tests need."""
    master_path = course.source_dir(assignment) / f"{notebook}.ipynb"
    master = nbformat.read(master_path, as_version=4)
    try:
        with Gradebook(course.db_url, course.course_id) as gb:
            stored = gb.find_notebook(notebook, assignment)
            sources = {c.name: (c.source, c.checksum) for c in stored.source_cells}
            points = {c.name: float(c.max_score) for c in stored.grade_cells}
    except MissingEntry:
        raise CourseError(f"the gradebook {course.db_url} has no notebook {assignment}/{notebook}: "
                          f"run `nbgrader generate_assignment {assignment}` first") from None

    cells: list[MasterCell] = []
    graded: dict[str, str] = {}
    for index, cell in enumerate(master.cells):
        meta = dict(cell.metadata.get("nbgrader", {}))
        grade_id = meta.get("grade_id")
        source = sources.get(grade_id, (cell.source, None))[0] if grade_id else cell.source
        if cell.cell_type != "code":
            cells.append(MasterCell(index, grade_id, cell.cell_type, "text", source, meta))
            continue
        solution = cell.source if meta.get("solution") else None
        try:
            names = analyze_source(solution or source)
        except SyntaxError as err:
            raise PlanError(f"master cell {grade_id or index} has a syntax error: {err}") from None
        if solution is not None:
            kind = "solution"
            if grade_id is None:  # nbgrader's own validation refuses this too
                raise PlanError(f"master cell {index + 1} is a solution cell without a grade id: "
                                "give it one in the master and run `nbgrader generate_assignment` again")
            for stmt in ast.parse(analysis_source(python_source(solution, TransformerManager()))).body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    graded[stmt.name] = grade_id
        else:
            kind = "test" if meta.get("grade") else "locked"
        cells.append(MasterCell(index, grade_id, "code", kind, source, meta, points.get(grade_id), names, solution))

    sandboxed: dict[str, str] = {}
    trusted = _needed_cells(cells, graded, sandboxed)
    for cell in cells:  # a test that rebinds or deletes a graded name (`del tokenize`)
        changed = sorted(set(cell.names.binds) & set(graded)) if cell.kind == "test" and cell.names else []
        if changed and cell.id not in sandboxed:
            sandboxed[cell.id] = f"it changes the name {changed[0]}"
    return AssignmentPlan(
        assignment=assignment, notebook=notebook, cells=cells, graded=graded,
        trusted=sorted(trusted),
        skipped=[c.grade_id or f"cell {c.index}" for c in cells if c.kind == "locked" and c.index not in trusted],
        tests_of={f: [c.id for c in cells if c.kind == "test" and f in c.reads] for f in graded},
        checksums={name: checksum for name, (_, checksum) in sources.items() if checksum},
        release_files=_files(course.release_dir(assignment), "**/*"),
        trusted_files={name: data for pattern in course.settings.trusted_modules
                       for name, data in _files(course.source_dir(assignment), pattern).items()},
        settings=course.settings,
        released_ids=_released_ids(course.release_dir(assignment) / f"{notebook}.ipynb",
                                   {c.grade_id for c in cells if c.kind in ("locked", "test") and c.grade_id}),
        sandboxed=sandboxed,
        manual={gid: points[gid] for gid, (_, _) in sources.items() if gid in points
                and any(c.grade_id == gid and c.nbgrader.get("solution") for c in cells)},
    )


def _released_ids(path: Path, ids: set[str]) -> dict[str, str]:
    if not path.is_file():
        return {}
    released = nbformat.read(path, as_version=4)
    found: dict[str, str] = {}
    for cell in released.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in ids and cell.source.strip():
            found.setdefault(cell.source.strip(), grade_id)
    return found


def _needed_cells(cells: list[MasterCell], graded: dict[str, str], sandboxed: dict[str, str]) -> set[int]:
    """Indices of the locked cells the test cells need, following reads back to binders.  A
    test that reads a variable a solution cell defines goes into `sandboxed` (it runs in the
    sandbox, in its place, where that variable is the student's)."""
    needed: set[int] = set()
    # (test cell the chain started from, cell that reads, name it reads)
    todo = [(c.id, c, name) for c in cells if c.kind == "test" for name in c.reads]
    while todo:
        test, reader, name = todo.pop()
        for cell in cells[:reader.index]:
            if cell.names is None or not (name in cell.names.binds or cell.names.dynamic):
                continue
            if cell.kind == "solution" and name not in graded:
                sandboxed.setdefault(test, f"it reads {name!r}, which the solution cell {cell.grade_id} defines")
                continue
            if cell.kind != "locked" or cell.index in needed:
                continue
            student_names = sorted(set(cell.names.reads) & set(graded))
            if student_names:
                via = f" via {reader.grade_id}" if reader.grade_id != test else ""
                raise PlanError(
                    f"test cell {test} depends{via} on the locked cell {cell.grade_id} (through {name!r}), "
                    f"which runs student code ({', '.join(student_names)}); replay grading cannot "
                    "reproduce that: make the test compute what it needs itself, or grade with "
                    "`nbgrader autograde`")
            needed.add(cell.index)
            todo.extend((test, cell, n) for n in cell.names.reads)
    return needed


# --------------------------------------------------------------------------------------------
# Student side

MAX_CELL_CHARS = 100_000  # a code cell longer than this is not run (students write a few KB)
MAX_CODE_CHARS = 1_000_000  # a notebook with more code than this is not graded at all


class Refused(Exception):
    """The submission's content cannot be graded (the message says why); it scores 0."""


@dataclass(frozen=True)
class StudentRun:
    """What the sandbox runs for one submission, in notebook order (see student_run)."""

    steps: tuple[Step, ...]
    tests: tuple[str, ...]  # test cells whose calls the steps make, in that order
    relevant: frozenset[str]  # labels of the cells whose errors can change a grade
    notes: tuple[str, ...]  # every recovery and refusal, in words, for the reason


@dataclass
class _Unit:
    """One cell of the submission as a top-to-bottom run sees it."""

    kind: str  # "student" | "master" (a locked cell: the master's code runs) | "test" | "place" (runs nothing)
    label: str
    code: str = ""  # student and master cells: the Python to run
    names: Names | None = None
    grade_id: str | None = None
    master: MasterCell | None = None


def grade_id_of(cell: dict) -> str | None:
    """The cell's nbgrader grade id if it has a usable one (a string), else None."""
    meta = cell.get("metadata")
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) and grade_id else None


def _malformed_metadata(cell: dict) -> bool:
    meta = cell.get("metadata")
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbgrader is not None and not (isinstance(nbgrader, dict) and isinstance(nbgrader.get("grade_id", ""), str))


def student_run(nb: nbformat.NotebookNode, plan: AssignmentPlan, python: Callable[[str], str],  # noqa: C901, PLR0915 (to be split: finding the units, then building the steps)
                names: Callable[[str], Names]) -> StudentRun:
    """The steps of a top-to-bottom run of the submission with the master's cells in place.

    Every code cell of the student runs, in notebook order.  A cell holding a locked cell's
    grade id runs the master's code (nbgrader overwrites it), but only if a test can depend on
    it (below); a test cell's planned calls are made at its position.  Cells after the last
    test cannot change a grade and are not run.  `python` turns a cell's source into the
    Python a kernel runs (IPython's input transformer), `names` analyses that Python
    (`cell_names`); the worker passes cached versions of both.

    A locked cell is run when it may bind, or change in place, a name that a test cell, a
    graded function or another such cell may read (static analysis, coursekit.names); the
    trainings and plots of this course are skipped that way.  Recoveries (nbgrader would
    score these cells 0) are named in the notes: duplicated grade ids (#1083), deleted test
    cells (#1682), cells that lost their metadata (#1398).
    """
    notes: list[str] = []
    known = {c.grade_id: c for c in plan.cells if c.grade_id}
    units: list[_Unit] = []
    seen: set[str] = set()
    duplicated: Counter = Counter()
    matched_by_source = 0
    code_chars = 0
    for index, cell in enumerate(nb.cells):
        grade_id = grade_id_of(cell)
        if grade_id is None and _malformed_metadata(cell):
            notes.append(f"cell {index + 1} has nbgrader metadata of the wrong shape; it counted as an ordinary cell")
        if grade_id in seen:  # nbgrader's DeduplicateIds: a later copy is an ordinary cell
            duplicated[grade_id] += 1
            grade_id = None
        elif grade_id is not None and grade_id not in known:
            grade_id = None  # OverwriteCells drops ids the gradebook does not know
        source = cell.get("source", "")
        if grade_id is None and cell.get("cell_type") == "code":
            recognised = plan.released_ids.get(source.strip())
            if recognised and recognised not in seen and known[recognised].kind in ("locked", "test"):
                grade_id, matched_by_source = recognised, matched_by_source + 1
        if grade_id is not None:
            seen.add(grade_id)
            master = known[grade_id]
            if master.kind == "locked":
                units.append(_Unit("master", grade_id, master.source, master.names, grade_id, master))
                continue
            if master.kind == "test":
                units.append(_Unit("test", grade_id, grade_id=grade_id, master=master))
                continue
            if master.kind == "solution" and cell.get("cell_type") != "code":
                notes.append(f"the solution cell {grade_id} was turned into {cell.get('cell_type')} "
                             "(jupyter/nbgrader#1941); it ran as code, as nbgrader turns it back")
            elif master.kind == "text" or cell.get("cell_type") != "code":
                units.append(_Unit("place", grade_id, grade_id=grade_id))  # where a deleted test may go back
                continue
        elif cell.get("cell_type") != "code":
            continue
        label = f"cell {index + 1}"
        if len(source) > MAX_CELL_CHARS:
            notes.append(f"{label} has {len(source):,} characters of code, more than the {MAX_CELL_CHARS:,} "
                         "a cell may have; it was not run")
            if grade_id is not None:
                units.append(_Unit("place", grade_id, grade_id=grade_id))
            continue
        code_chars += len(source)
        if code_chars > MAX_CODE_CHARS:
            raise Refused(f"the notebook has more than {MAX_CODE_CHARS:,} characters of code; "
                          "it was not graded (clear generated code and resubmit)")
        units.append(_Unit("student", label, source, grade_id=grade_id))

    for grade_id, count in duplicated.items():
        notes.append(f"grade id {grade_id} is used by {count + 1} cells (duplicated cells, jupyter/nbgrader#1083); "
                     "the first one was graded, the others ran as ordinary cells")
    if matched_by_source:
        notes.append(f"{matched_by_source} cells had lost their nbgrader metadata (jupyter/nbgrader#1398) and "
                     "were recognised by their released source")
    if not any(grade_id_of(c) for c in nb.cells):
        notes.append("no cell has nbgrader metadata (copied into a new notebook, jupyter/nbgrader#1398)")
    _restore_deleted_tests(units, plan, seen, notes)
    for unit in units:
        if unit.kind == "student":
            unit.code = python(unit.code)
            unit.names = _names(unit, plan, notes, names)
    _note_definitions(units, plan, notes)
    tests = [i for i, u in enumerate(units) if u.kind == "test"]
    units = units[:tests[-1] + 1] if tests else []
    relevant = _relevant(units, plan)

    steps: list[Step] = []
    for unit in units:
        if unit.kind == "test" and unit.master is not None and unit.master.id in plan.sandboxed:
            steps.append(Test(unit.master.id, python(unit.master.source)))
        elif unit.kind == "test" and unit.master is not None:
            steps += plan.calls[unit.master.id]
        elif unit.kind == "student" or unit.label in relevant:
            steps.append(Cell(unit.label, unit.code if unit.kind == "student" else python(unit.code)))
    return StudentRun(tuple(steps), tuple(u.master.id for u in units if u.kind == "test" and u.master is not None),
                      frozenset(relevant),
                      tuple(notes))


def _restore_deleted_tests(units: list[_Unit], plan: AssignmentPlan, seen: set[str], notes: list[str]) -> None:
    """Test cells the submission lost go back after the cell that precedes them in the master
    (as nbgrader's add_missing_cells does), else at the end.  When that cell is itself missing
    or lost its metadata, nothing says where the test belongs (add_missing_cells fails on such
    a notebook, so nbgrader grades none of it): the submission is refused with what to restore."""
    for test in plan.tests:
        if test.id in seen:
            continue
        previous = next((c.grade_id for c in reversed(plan.cells[:test.index]) if c.grade_id), None)
        if previous is not None and previous not in seen:
            raise Refused(
                f"test cell {test.id} was deleted (jupyter/nbgrader#1682), and the cell above it in the release, "
                f"{previous}, is not in the notebook with its nbgrader metadata (deleted, or copied without it: "
                "jupyter/nbgrader#1398), so nothing says where the test goes back; nbgrader cannot grade this "
                f"notebook either. It was not graded and scores 0: restore the cell {test.id} from the released "
                f"notebook, right below {previous}, or copy your answers into a fresh copy of the release, "
                "and submit again")
        places = [i for i, u in enumerate(units) if u.grade_id == previous] if previous is not None else []
        at = places[-1] + 1 if places else len(units)
        if previous is None:
            notes.append(f"test cell {test.id} could not be placed; it ran at the end of the notebook")
        units.insert(at, _Unit("test", test.id, grade_id=test.id, master=test))
        seen.add(test.id)
        notes.append(f"test cell {test.id} was deleted (jupyter/nbgrader#1682); the master's test ran in its place")


# What parsing and analysing hostile source may raise: null bytes give ValueError, absurd
# nesting RecursionError or MemoryError.
UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def cell_names(code: str) -> Names:
    """The names a cell's Python code reads, binds and changes; raises one of UNPARSABLE."""
    return analyze(ast.parse(analysis_source(code)))


def _names(unit: _Unit, plan: AssignmentPlan, notes: list[str], names: Callable[[str], Names]) -> Names | None:
    """A student cell's names, or None if Python cannot parse it (it fails in the sandbox too)."""
    try:
        return names(unit.code)
    except UNPARSABLE as err:
        defines = sorted(f for f in plan.graded if f"def {f}" in unit.code)
        lineno = getattr(err, "lineno", None)
        where = f"line {lineno}: " if lineno else ""
        what = (f"has a syntax error ({where}{err.msg})" if isinstance(err, SyntaxError)
                else f"cannot be parsed ({type(err).__name__})")
        if defines or unit.grade_id:
            notes.append(f"{unit.label} {what}" + (f"; it held {', '.join(defines)}" if defines else ""))
        return None


def _relevant(units: list[_Unit], plan: AssignmentPlan) -> set[str]:
    """Labels of the cells a test can depend on: those that may bind or change in place a
    name the tests, the graded functions or another relevant cell may read (a fixpoint)."""
    wanted = set(plan.graded)
    for unit in units:
        if unit.kind == "test" and unit.master is not None:
            wanted |= unit.master.reads
    relevant: set[str] = set()
    grew = True
    while grew:
        grew = False
        for unit in units:
            names = unit.names
            if unit.kind == "test" or names is None or unit.label in relevant:
                continue
            if names.dynamic or names.binds & wanted or names.mutates & wanted:
                relevant.add(unit.label)
                wanted |= names.reads
                grew = True
    return relevant


def _note_definitions(units: list[_Unit], plan: AssignmentPlan, notes: list[str]) -> None:
    """Say when a graded function has no definition, several, or none above its tests (each
    test uses the one a top-to-bottom run has at its position)."""
    for function in plan.graded:
        defined = [i for i, u in enumerate(units) if u.kind == "student" and u.names is not None
                   and (function in u.names.binds or u.names.dynamic)]
        tests = [i for i, u in enumerate(units) if u.kind == "test" and u.grade_id in plan.tests_of.get(function, ())]
        where = ", ".join(units[i].label.removeprefix("cell ") for i in defined)
        if not defined:
            notes.append(f"no definition of {function} in the notebook: its tests score 0")
        elif tests and min(defined) > min(tests):
            notes.append(f"{function} is defined only below its first test (cell {where}), which a "
                         "top-to-bottom run has not reached there")
        elif len(defined) > 1:
            notes.append(f"{function} is defined {len(defined)} times (cells {where}); each test used the "
                         "definition in force at its position, as in a top-to-bottom run")
