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
import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from .config import DEFAULTS, Settings
from .names import DYNAMIC_CALLS, Names, analyze, analyze_source, strip_magics
from .read import Course, CourseError


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
            for stmt in ast.parse(strip_magics(solution)).body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    graded[stmt.name] = grade_id
        else:
            kind = "test" if meta.get("grade") else "locked"
        cells.append(MasterCell(index, grade_id, "code", kind, source, meta, points.get(grade_id), names, solution))

    trusted = _needed_cells(cells, graded)
    return AssignmentPlan(
        assignment=assignment, notebook=notebook, cells=cells, graded=graded,
        trusted=sorted(trusted),
        skipped=[c.grade_id or f"cell {c.index}" for c in cells if c.kind == "locked" and c.index not in trusted],
        tests_of={f: [c.grade_id for c in cells if c.kind == "test" and f in c.names.reads] for f in graded},
        checksums={name: checksum for name, (_, checksum) in sources.items() if checksum},
        release_files=_files(course.release_dir(assignment), "**/*"),
        trusted_files={name: data for pattern in course.settings.trusted_modules
                       for name, data in _files(course.source_dir(assignment), pattern).items()},
        settings=course.settings,
    )


def _needed_cells(cells: list[MasterCell], graded: dict[str, str]) -> set[int]:
    """Indices of the locked cells the test cells need, following reads back to binders."""
    needed: set[int] = set()
    # (test cell the chain started from, cell that reads, name it reads)
    todo = [(c.grade_id, c, name) for c in cells if c.kind == "test" for name in c.names.reads]
    while todo:
        test, reader, name = todo.pop()
        for cell in cells[:reader.index]:
            if cell.names is None or not (name in cell.names.binds or cell.names.dynamic):
                continue
            if cell.kind == "solution" and name not in graded:
                raise PlanError(f"cell {reader.grade_id} reads {name!r}, which the solution cell "
                                f"{cell.grade_id} defines but is not a graded function")
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


@dataclass(frozen=True)
class _Statement:
    cell: int
    node: ast.stmt
    text: str
    names: Names


@dataclass(frozen=True)
class StudentCode:
    parts: tuple[str, ...]  # what the sandbox executes, like cells: needed master statements, then the student's
    labels: tuple[str, ...]  # where each part comes from, e.g. "setup" or "cell 8"
    found: dict[str, bool]  # graded function -> a definition was found
    notes: tuple[str, ...]  # every workaround, in words, for the reason


# What parsing and analysing hostile source may raise: null bytes give ValueError, absurd
# nesting RecursionError or MemoryError.
UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def _statements(cell_index: int, source: str) -> list[_Statement]:
    """Top-level statements of a cell, analysed; raises one of UNPARSABLE."""
    text = strip_magics(source)
    tree = ast.parse(text)
    lines = text.split("\n")
    out = []
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        out.append(_Statement(cell_index, node, "\n".join(lines[first - 1:node.end_lineno]), analyze(node)))
    return out


def _markdown_code(source: str) -> str:
    """Code pasted in a markdown cell, with any ``` fences removed."""
    return "\n".join(line for line in source.split("\n") if not line.strip().startswith("```"))


def student_code(nb: nbformat.NotebookNode, plan: AssignmentPlan) -> StudentCode:
    notes: list[str] = []
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells]
    position = {gid: i for i, gid in reversed(list(enumerate(ids))) if gid}  # first cell with each id

    for gid, count in Counter(g for g in ids if g).items():
        if count > 1:
            notes.append(f"grade id {gid} is used by {count} cells (duplicated cells, jupyter/nbgrader#1083)")
    for test in plan.tests:
        if test.grade_id not in position:
            notes.append(f"test cell {test.grade_id} was deleted (jupyter/nbgrader#1682); the master's test ran anyway")
        elif nb.cells[position[test.grade_id]].cell_type != "code":
            notes.append(f"test cell {test.grade_id} was turned into {nb.cells[position[test.grade_id]].cell_type} "
                         "(jupyter/nbgrader#1941); the master's test ran anyway")
    if not any(ids):
        notes.append("no cell has nbgrader metadata (copied into a new notebook, jupyter/nbgrader#1398); "
                     "functions were found by name")

    instructor_ids = {c.grade_id for c in plan.cells if c.kind in ("locked", "test")}
    code_cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    student = _StudentCells([(i, src) for i, src in code_cells if ids[i] not in instructor_ids], plan, notes)
    overwritten = _StudentCells([(i, src) for i, src in code_cells if ids[i] in instructor_ids], plan, notes)

    chosen: dict[str, _Statement] = {}
    for function, solution_id in plan.graded.items():
        candidates = student.binders(function)
        if not candidates:
            candidates = overwritten.binders(function)
            if candidates:
                notes.append(f"{function} was found only in cell {candidates[-1].cell + 1}, a locked cell that "
                             "nbgrader would overwrite with the master's version; graded it anyway")
        if not candidates:
            candidates = _from_text_cells(nb, function)
            if candidates:
                notes.append(f"{function} was found only in a {nb.cells[candidates[-1].cell].cell_type} cell "
                             f"(cell {candidates[-1].cell + 1}, jupyter/nbgrader#1941) and was graded from there")
        if not candidates:
            notes.append(f"no definition of {function} in the notebook: its tests score 0")
            continue
        # nbgrader runs a test after the cells above it: use the last definition above the first test.
        first_test = min((position[t] for t in plan.tests_of.get(function, []) if t in position), default=None)
        above = [s for s in candidates if first_test is None or s.cell < first_test]
        chosen[function] = (above or candidates)[-1]
        if len(candidates) > 1:
            notes.append(f"{function} is defined {len(candidates)} times; graded the one in cell "
                         f"{chosen[function].cell + 1}")
        if solution_id not in position:
            notes.append(f"the solution cell {solution_id} lost its nbgrader metadata or was deleted; "
                         f"{function} was found by name in cell {chosen[function].cell + 1}")

    included, master_statements = _closure(student, chosen, plan)
    chunks = [(gid, "\n".join(s.text for _, s in group))
              for gid, group in itertools.groupby(master_statements, key=lambda item: item[0])]
    by_cell: dict[int, list[str]] = {}
    for s in sorted(included, key=lambda s: (s.cell, s.node.lineno)):
        by_cell.setdefault(s.cell, []).append(s.text)
    chunks += [(f"cell {i + 1}", "\n".join(texts)) for i, texts in by_cell.items()]
    skipped_demo = sorted({gid for gid, _ in master_statements if gid in plan.skipped})
    if skipped_demo:
        notes.append(f"the student code reads names from demo cells {', '.join(skipped_demo)}; they ran in the sandbox")
    return StudentCode(tuple(text for _, text in chunks), tuple(label for label, _ in chunks),
                       {f: f in chosen for f in plan.graded}, tuple(notes))


class _StudentCells:
    """Code cells of a submission, each parsed only when a name being looked for appears in its
    text (a cell cannot bind a name it does not spell, unless it star-imports or calls exec)."""

    def __init__(self, cells: list[tuple[int, str]], plan: AssignmentPlan, notes: list[str]) -> None:
        self.cells, self.plan, self.notes = cells, plan, notes
        self.parsed: dict[int, list[_Statement]] = {}

    def statements(self, index: int, source: str) -> list[_Statement]:
        if index not in self.parsed:
            try:
                self.parsed[index] = _statements(index, source)
            except UNPARSABLE as err:
                defines = sorted(f for f in self.plan.graded if f"def {f}" in source)
                where = f"line {err.lineno}: " if getattr(err, "lineno", None) else ""
                what = (f"has a syntax error ({where}{err.msg})" if isinstance(err, SyntaxError)
                        else f"cannot be parsed ({type(err).__name__})")
                self.notes.append(f"cell {index + 1} {what} and was skipped"
                                  + (f"; it held {', '.join(defines)}" if defines else ""))
                self.parsed[index] = []
        return self.parsed[index]

    def binders(self, name: str) -> list[_Statement]:
        """Top-level statements that may bind `name`, in notebook order."""
        return [s for index, source in self.cells
                if name in source or "import *" in source or any(f"{c}(" in source for c in DYNAMIC_CALLS)
                for s in self.statements(index, source) if _binds(s, name)]


def _binds(statement: _Statement, name: str) -> bool:
    """A top-level statement that may bind `name` (an expression statement such as a training never counts)."""
    return not isinstance(statement.node, ast.Expr) and (name in statement.names.binds or statement.names.dynamic)


def _from_text_cells(nb: nbformat.NotebookNode, function: str) -> list[_Statement]:
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" and f"def {function}" in cell.source:
            try:
                found += [s for s in _statements(index, _markdown_code(cell.source)) if function in s.names.binds]
            except UNPARSABLE:
                continue
    return found


_MASTER_STATEMENTS: dict[str, list[tuple[str, _Statement]]] = {}


def _master_statements(plan: AssignmentPlan) -> list[tuple[str, _Statement]]:
    """The locked cells' statements, parsed once per plan object (per worker process)."""
    if plan.key not in _MASTER_STATEMENTS:
        _MASTER_STATEMENTS[plan.key] = [(c.grade_id or f"cell {c.index}", s) for c in plan.cells
                                        if c.kind == "locked" for s in _statements(c.index, c.source)]
    return _MASTER_STATEMENTS[plan.key]


def _closure(student: _StudentCells, chosen: dict[str, _Statement],
             plan: AssignmentPlan) -> tuple[list[_Statement], list[tuple[str, _Statement]]]:
    """The student statements, then the master's locked-cell statements, the chosen definitions
    may read (transitively).  The student's own binding of a name wins, as it would in a kernel."""
    master = _master_statements(plan)
    included: dict[int, _Statement] = {id(s): s for s in chosen.values()}
    from_master: dict[int, tuple[str, _Statement]] = {}
    todo = [n for s in chosen.values() for n in s.names.reads]
    seen: set[str] = set(chosen)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        binders = student.binders(name)
        pool, found = (included, [(None, s) for s in binders]) if binders else \
            (from_master, [(gid, s) for gid, s in master if _binds(s, name)])
        for gid, s in found:
            if id(s) not in pool:
                pool[id(s)] = s if gid is None else (gid, s)
                todo.extend(s.names.reads)
    ordered = sorted(from_master.values(), key=lambda item: (item[1].cell, item[1].node.lineno))
    return list(included.values()), ordered
