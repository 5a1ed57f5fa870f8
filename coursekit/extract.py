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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbgrader.api import Gradebook, MissingEntry

from .config import DEFAULTS, Settings
from .names import Names, analysis_source, analyze, python_source
from .read import Course, CourseError
from .sandbox import Cell, Step, Test


class PlanError(CourseError):
    """The assignment cannot be graded by replay; the message says which cell is the problem."""


class LockedCellFails(PlanError):
    """A locked cell the replayed tests need fails in the grader; its tests go to the sandbox."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


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

    @property
    def label(self) -> str:
        """How messages name the cell: its grade id, else its position."""
        return self.grade_id or f"cell {self.index + 1}"


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
    # what the instructor should know at planning time (a master test failing with the master's
    # own solution, a master cell that does not parse), printed before grading
    warnings: list[str] = field(default_factory=list)
    modules: frozenset[str] = frozenset()  # names the master binds only by `import` (see Names.changes)
    release_files: dict[str, bytes] = field(default_factory=dict)  # the sandbox's working folder
    trusted_files: dict[str, bytes] = field(default_factory=dict)  # course modules the tests import
    settings: Settings = DEFAULTS  # the course's c.CourseKit.* (preloads, limits, traceback filter)

    @functools.cached_property
    def key(self) -> str:
        """Identifies the plan's content; workers cache what they derive from a plan under it."""
        digest = hashlib.sha256()
        for cell in self.cells:
            digest.update(cell.source.encode() + (cell.solution or "").encode())
        digest.update(repr((self.trusted, sorted(self.sandboxed))).encode())
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

    @property
    def answer_cells(self) -> list[str]:
        """Grade ids of the solution cells: nbgrader writes "No response." for each one left as released."""
        return [c.grade_id for c in self.cells if c.nbgrader.get("solution") and c.grade_id]

    def without_trusted_cell(self, index: int, why: str) -> AssignmentPlan:
        """This plan, with the tests that need the locked cell `index` in the grader moved to the
        sandbox (the cell fails in the grader: a data file, a name only a kernel has)."""
        sandboxed = dict(self.sandboxed)
        cells = self.cells
        for test in self.tests:
            if test.id not in sandboxed and index in _needed_by(cells, test, self.graded, self.modules)[0]:
                sandboxed[test.id] = why
        if sandboxed == self.sandboxed:  # no replayed test needs it: nothing else to do about it
            raise PlanError(why)
        trusted = replay_plan(cells, self.graded, self.modules, sandboxed)
        return replace(self, trusted=sorted(trusted), sandboxed=sandboxed, calls={},
                       skipped=[c.label for c in cells if c.kind == "locked" and c.index not in trusted])


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
    master = nbformat.read(course.source_dir(assignment) / f"{notebook}.ipynb", as_version=4)
    sources, points = _stored_cells(course, assignment, notebook)
    cells, graded, warnings = _master_cells(master, sources, points)

    modules = _modules(cells)
    sandboxed: dict[str, str] = {}
    trusted = replay_plan(cells, graded, modules, sandboxed)
    return AssignmentPlan(
        assignment=assignment, notebook=notebook, cells=cells, graded=graded,
        trusted=sorted(trusted),
        skipped=[c.label for c in cells if c.kind == "locked" and c.index not in trusted],
        tests_of={f: [c.id for c in cells if c.kind == "test" and f in c.reads] for f in graded},
        checksums={name: checksum for name, (_, checksum) in sources.items() if checksum},
        release_files=_files(course.release_dir(assignment), "**/*"),
        trusted_files={name: data for pattern in course.settings.trusted_modules
                       for name, data in _files(course.source_dir(assignment), pattern).items()},
        settings=course.settings,
        released_ids=_released_ids(course.release_dir(assignment) / f"{notebook}.ipynb",
                                   {c.grade_id for c in cells if c.kind in ("locked", "test") and c.grade_id}),
        sandboxed=sandboxed,
        warnings=warnings,
        modules=modules,
        manual={gid: points[gid] for gid, (_, _) in sources.items() if gid in points
                and any(c.grade_id == gid and c.nbgrader.get("solution") for c in cells)},
    )


def _stored_cells(course: Course, assignment: str, notebook: str
                  ) -> tuple[dict[str, tuple[str, str | None]], dict[str, float]]:
    """What the gradebook holds of the notebook: each source cell's (source, checksum) and each
    grade cell's points, by grade id."""
    try:
        with Gradebook(course.db_url, course.course_id) as gb:
            stored = gb.find_notebook(notebook, assignment)
            sources = {c.name: (c.source, c.checksum) for c in stored.source_cells}
            points = {c.name: float(c.max_score) for c in stored.grade_cells}
    except MissingEntry:
        raise CourseError(f"the gradebook {course.db_url} has no notebook {assignment}/{notebook}: "
                          f"run `nbgrader generate_assignment {assignment}` first") from None
    return sources, points


def _master_cells(master: nbformat.NotebookNode, sources: dict[str, tuple[str, str | None]],
                  points: dict[str, float]) -> tuple[list[MasterCell], dict[str, str], list[str]]:
    """The master's cells as the plan sees them (kind, the names each binds and reads), the graded
    functions (name -> the solution cell defining it), and warnings about cells that do not parse."""
    cells: list[MasterCell] = []
    graded: dict[str, str] = {}
    warnings: list[str] = []
    transformer = TransformerManager()
    for index, cell in enumerate(master.cells):
        meta = dict(cell.metadata.get("nbgrader", {}))
        grade_id = meta.get("grade_id")
        source = sources.get(grade_id, (cell.source, None))[0] if grade_id else cell.source
        if cell.cell_type != "code":
            cells.append(MasterCell(index, grade_id, cell.cell_type, "text", source, meta))
            continue
        solution = cell.source if meta.get("solution") else None
        kind = "solution" if solution is not None else "test" if meta.get("grade") else "locked"
        if kind == "solution" and grade_id is None:  # nbgrader's own validation refuses this too
            raise PlanError(f"master cell {index + 1} is a solution cell without a grade id: "
                            "give it one in the master and run `nbgrader generate_assignment` again")
        names: Names | None = None
        try:  # a cell a kernel cannot parse (a teaching cell meant to fail) binds nothing
            code = python_source(solution or source, transformer)
            names = analyze(ast.parse(analysis_source(code)))
        except UNPARSABLE as err:
            label = grade_id or f"cell {index + 1}"
            warnings.append(f"master {kind} cell {label} does not parse ({type(err).__name__}: "
                            f"{getattr(err, 'msg', err)}); in a kernel it fails alone, and so it does here")
        if kind == "solution" and names is not None and grade_id is not None:
            for stmt in ast.parse(analysis_source(code)).body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    graded[stmt.name] = grade_id
        max_score = points.get(grade_id) if grade_id else None
        cells.append(MasterCell(index, grade_id, "code", kind, source, meta, max_score, names, solution))
    return cells, graded, warnings


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


def _modules(cells: list[MasterCell]) -> frozenset[str]:
    """Names the master binds only by `import` statements: calling their functions (`np.zeros`)
    does not count as changing them (Names.changes)."""
    imported: set[str] = set()
    other: set[str] = set()
    for cell in cells:
        if cell.names is not None:
            imported |= cell.names.imports
            other |= cell.names.binds - cell.names.imports
    return frozenset(imported - other)


def _touches(cell: MasterCell, modules: frozenset[str], graded: dict[str, str] | None = None) -> frozenset[str]:
    """Names whose value or object the cell may change: what it binds and what it changes in place.

    Handing a graded function to a helper (`check(mean)`) changes nothing replay cares about.
    A solution cell's changes to modules do not count: NumPy's random state, which a graded
    function reseeds, is the sandbox's in replay (README lists this difference)."""
    assert cell.names is not None
    changed = cell.names.changes(modules)
    if graded is not None:
        changed -= cell.names.passes & set(graded)
    if cell.kind == "solution":
        changed -= modules
    return cell.names.binds | changed


def _needed_by(cells: list[MasterCell], test: MasterCell, graded: dict[str, str],  # noqa: C901 (one walk back through the cells, with each reason replay would differ)
               modules: frozenset[str]) -> tuple[set[int], list[str], set[str], set[str]]:
    """What replaying `test` in the grader needs, following every name it reads back to the
    nearest cell that surely binds it (`Names.defines`), through every cell on the way that may
    bind or change it.  Returns the locked cells it needs, why replay would not be the same as a
    kernel run (empty if it would), the earlier test cells it reads names of, and the names the
    test and its locked cells read."""
    needed: set[int] = set()
    why: list[str] = []
    linked: set[str] = set()
    read: set[str] = set(test.reads)
    todo = [(test, name) for name in test.reads]
    done: set[tuple[int, str]] = set()
    while todo:
        reader, name = todo.pop()
        if (reader.index, name) in done:
            continue
        done.add((reader.index, name))
        for cell in _binders(cells, reader, name, graded, modules):
            if cell.kind == "test" and reader is test:
                linked.add(cell.id)  # replayed in order in one namespace, as in a kernel
            elif reason := _unreplayable_binder(cell, reader, test, name, graded):
                why.append(reason)
            elif cell.kind == "locked" and cell.index not in needed:
                needed.add(cell.index)
                read |= cell.reads
                todo.extend((cell, n) for n in cell.reads)
    return needed, why, linked, read


def _binders(cells: list[MasterCell], reader: MasterCell, name: str, graded: dict[str, str],
             modules: frozenset[str]) -> list[MasterCell]:
    """The cells above `reader` that may bind or change `name`, nearest first, down to the
    nearest one that surely binds it (nothing earlier can be seen past that one)."""
    found = []
    for cell in reversed(cells[:reader.index]):
        if cell.names is None or not (name in _touches(cell, modules, graded) or cell.names.dynamic):
            continue
        found.append(cell)
        if name in cell.names.defines:
            break
    return found


def _unreplayable_binder(cell: MasterCell, reader: MasterCell, test: MasterCell, name: str,
                         graded: dict[str, str]) -> str | None:
    """Why `cell`, which may bind or change `name` that `reader` reads for `test`, stops the
    grader from reproducing what a kernel's `test` sees; None if the grader can run it."""
    assert cell.names is not None
    if cell.kind == "solution":
        if name in graded and name in cell.names.defines:
            return None  # the graded function itself: replay's stub stands for it
        return f"it reads {name!r}, which the solution cell {cell.label} may define or change"
    if cell.kind == "test":
        return (f"the locked cell {reader.label} it needs reads {name!r}, which the test cell "
                f"{cell.label} above it binds or changes")
    if cell.names.reads_all:
        return (f"it needs the locked cell {cell.label}, which may read any name (a magic, dir(), "
                "globals(), eval or exec)")
    if student := sorted(cell.names.reads & set(graded)):
        via = f" via {reader.label}" if reader is not test else ""
        return (f"it depends{via} on the locked cell {cell.label} (through {name!r}), which runs "
                f"student code ({', '.join(student)})")
    return None


def _first_reason(test: MasterCell, why: list[str], graded: dict[str, str], modules: frozenset[str],
                  function_reads: set[str]) -> str | None:
    """Why `test` alone cannot be replayed (before looking at the other tests), if it cannot."""
    if test.names is None:
        return "it does not parse (it fails as in a kernel)"
    if test.names.reads_all or test.names.dynamic:
        return "it may read or bind any name (a magic, dir(), globals(), eval or exec)"
    if why:
        return why[0]
    touched = _touches(test, modules, graded)
    if changed := sorted(touched & set(graded)):
        return f"it changes the name {changed[0]}"
    if changed := sorted(touched & (function_reads - set(graded))):
        return f"it changes {changed[0]!r}, which a graded function reads"
    return None


def replay_plan(cells: list[MasterCell], graded: dict[str, str], modules: frozenset[str],
                 sandboxed: dict[str, str]) -> set[int]:
    """Decide which test cells are graded by replay, and return the locked cells the grader runs
    for them (the trusted namespace, run before the tests).  A test goes to `sandboxed`, to run
    in the sandbox in its place as a kernel would, unless replay is provably the same as a
    top-to-bottom run: every name it reads (and its locked cells read) comes from locked cells
    that run no student code and read no name a test binds, or is a graded function; it does
    not change a graded name or a name a graded function reads; nothing the grader runs before
    all tests rebinds or changes, below the test, what it reads; and it shares no names with a
    test graded in the sandbox.  Unsure means the sandbox.

    `cells`: the master's cells; `graded`: each graded function's name -> the id of the solution
    cell that defines it; `modules`: the names the master binds only by `import`.  `plan_assignment`
    calls it; it is public so that its decisions can be checked on cells built by hand."""
    tests = [c for c in cells if c.kind == "test"]
    function_reads: set[str] = set()
    for cell in cells:
        if cell.kind == "solution" and cell.names is not None and cell.names.defines & set(graded):
            function_reads |= cell.reads  # the globals its functions read (and its own statements')
    info = {t.id: _needed_by(cells, t, graded, modules) for t in tests if t.names is not None}
    for test in tests:
        reason = _first_reason(test, info[test.id][1] if test.id in info else [], graded, modules, function_reads)
        if reason:
            sandboxed.setdefault(test.id, reason)
    readers = {t.id: {s for s, (_, _, linked, _) in info.items() if t.id in linked} for t in tests}
    while True:
        replayed = [t for t in tests if t.id not in sandboxed]
        trusted = set().union(*(info[t.id][0] for t in replayed))
        moved = {t.id: reason for t in replayed
                 if (reason := _order_reason(t, info[t.id], readers[t.id], trusted, cells, modules, sandboxed))}
        sandboxed.update(moved)
        if not moved:
            return trusted


def _order_reason(test: MasterCell, info: tuple[set[int], list[str], set[str], set[str]], readers: set[str],
                  trusted: set[int], cells: list[MasterCell], modules: frozenset[str],
                  sandboxed: dict[str, str]) -> str | None:
    """Why a test that could be replayed on its own cannot be, given the others: the grader
    runs every trusted cell before all tests, so one below it must not change what it reads;
    and it shares no names with a test graded in the sandbox (`readers`: the tests that read
    names this one binds)."""
    _, _, linked, read = info
    for cell in (cells[i] for i in sorted(trusted) if i > test.index):
        if cell.names is not None and (cell.names.dynamic or _touches(cell, modules) & read):
            return f"the locked cell {cell.label} below it, which another test needs, binds or changes what it reads"
    if linked_sandboxed := sorted(linked & set(sandboxed)):
        return f"it reads names the test cell {linked_sandboxed[0]} binds, which runs in the sandbox"
    if reader := sorted(readers & set(sandboxed)):
        return f"the test cell {reader[0]}, graded in the sandbox, reads names it binds"
    return None


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


def last_copies(cells: list) -> dict[str, int]:
    """Grade id -> index of the cell that keeps it: the last cell carrying it, as nbgrader's
    DeduplicateIds walks the notebook backwards and strips the id from every earlier copy."""
    return {grade_id: index for index, cell in enumerate(cells) if (grade_id := grade_id_of(cell))}


def _malformed_metadata(cell: dict) -> bool:
    meta = cell.get("metadata")
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbgrader is not None and not (isinstance(nbgrader, dict) and isinstance(nbgrader.get("grade_id", ""), str))


def student_run(nb: nbformat.NotebookNode, plan: AssignmentPlan, python: Callable[[str], str],
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
    units = _find_units(nb, plan, notes)
    for unit in units:
        if unit.kind == "student":
            unit.code = python(unit.code)
            unit.names = _names(unit, plan, notes, names)
    _note_definitions(units, plan, notes)
    tests = [i for i, u in enumerate(units) if u.kind == "test"]
    units = units[:tests[-1] + 1] if tests else []
    relevant = _relevant(units, plan)
    return StudentRun(tuple(_steps(units, plan, relevant, python)),
                      tuple(u.master.id for u in units if u.kind == "test" and u.master is not None),
                      frozenset(relevant), tuple(notes))


def _find_units(nb: nbformat.NotebookNode, plan: AssignmentPlan, notes: list[str]) -> list[_Unit]:  # noqa: C901, PLR0912, PLR0915 (one pass over the cells as nbgrader's preprocessors see them: ids deduplicated, unknown ids dropped, lost metadata recognised)
    """The submission's cells as the units of a top-to-bottom run, in notebook order, with the
    deleted test cells put back; what was recovered or left out goes into `notes`."""
    known = {c.grade_id: c for c in plan.cells if c.grade_id}
    units: list[_Unit] = []
    seen: set[str] = set()
    duplicated: Counter = Counter()
    matched_by_source = 0
    code_chars = 0
    kept = last_copies(nb.cells)
    for index, cell in enumerate(nb.cells):
        grade_id = grade_id_of(cell)
        if grade_id is None and _malformed_metadata(cell):
            notes.append(f"cell {index + 1} has nbgrader metadata of the wrong shape; it counted as an ordinary cell")
        if grade_id is not None and kept[grade_id] != index:  # DeduplicateIds: an earlier copy is ordinary
            duplicated[grade_id] += 1
            grade_id = None
        elif grade_id is not None and grade_id not in known:
            grade_id = None  # OverwriteCells drops ids the gradebook does not know
        source = cell.get("source", "")
        if grade_id is None and cell.get("cell_type") == "code":
            recognised = plan.released_ids.get(source.strip())
            if recognised and recognised not in seen and recognised not in kept \
                    and known[recognised].kind in ("locked", "test"):
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
                     "the last one was graded, as nbgrader's DeduplicateIds keeps it; the others ran as ordinary cells")
    if matched_by_source:
        notes.append(f"{matched_by_source} cells had lost their nbgrader metadata (jupyter/nbgrader#1398) and "
                     "were recognised by their released source")
    if not any(grade_id_of(c) for c in nb.cells):
        notes.append("no cell has nbgrader metadata (copied into a new notebook, jupyter/nbgrader#1398)")
    _restore_deleted_tests(units, plan, seen, notes)
    return units


def _steps(units: list[_Unit], plan: AssignmentPlan, relevant: set[str], python: Callable[[str], str]) -> list[Step]:
    """The run's steps: each student cell and each master cell a test may depend on, then at a
    test cell its planned calls, or the whole test when it runs in the sandbox."""
    steps: list[Step] = []
    for unit in units:
        if unit.kind == "test" and unit.master is not None and unit.master.id in plan.sandboxed:
            steps.append(Test(unit.master.id, python(unit.master.source)))
        elif unit.kind == "test" and unit.master is not None:
            steps += plan.calls[unit.master.id]
        elif unit.kind == "student" or unit.label in relevant:
            steps.append(Cell(unit.label, unit.code if unit.kind == "student" else python(unit.code)))
    return steps


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
    everything = False  # a test or a relevant cell may read any name (dir(), globals(), a magic)
    for unit in units:
        if unit.kind == "test" and unit.master is not None:
            wanted |= unit.master.reads
            everything |= unit.master.names is None or unit.master.names.reads_all
    relevant: set[str] = set()
    grew = True
    while grew:
        grew = False
        for unit in units:
            names = unit.names
            if unit.kind == "test" or names is None or unit.label in relevant:
                continue
            if everything or names.dynamic or (names.binds | names.changes(plan.modules)) & wanted:
                relevant.add(unit.label)
                wanted |= names.reads
                everything |= names.reads_all
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
