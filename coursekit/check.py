"""``coursekit check ASSIGNMENT``: an instructor checks coursekit on their own course, before the term.

An instructor should not have to take coursekit's grades on faith.  This command

1. shows the plan: for each test cell, whether coursekit grades it by replay (the test's calls
   made on the student's functions in the sandbox, the test itself run in the grader) or runs it
   in the sandbox in its place, and why;
2. builds students ("variants") from the master: the solution; the untouched release; the
   solution with each solution cell stubbed in turn; the solutions in another style (each graded
   function's code moved into a helper in a new cell above, or the definitions of a cell
   reordered, where that changes nothing); and, for each graded function, the solution with
   that function returning a wrong value;
3. grades them with stock ``nbgrader autograde`` and with coursekit, each in its own temporary
   copy of the course (stock nbgrader with this Python's ``bin/`` first on PATH, as it shells
   out to ``alembic`` and ``jupyter``);
4. prints, per grade cell, whether the two agree on every variant and what differs, and ends with
   one line such as ``check: 54/54 cells agree on 10 variants``.

The course folder itself is only read: the copies get their own root and SQLite gradebook (lines
appended to the copy's nbgrader_config.py), so a course whose gradebook is a PostgreSQL server or
lives elsewhere is never written to.  What a variant changes is written with `ast` where a
definition is renamed or a return value wrapped; a solution cell that is not plain Python (IPython
magics) keeps its own text in those variants, and the plan says so.

``scripts/fuzz.py`` (this course's differential fuzz) and ``bench/bench.py`` (the general-course
table) use the pieces here: `nbgrader_env`, `course_copy`, `stock_autograde`, `grades`.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TextIO

from IPython.core.inputtransformer2 import TransformerManager
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearSolutions

from .printable import printable
from .read import CourseError, course_config, load_course

__all__ = ["check", "CheckResult", "CellCheck", "Variant", "variants", "nbgrader_env", "course_copy",
           "stock_autograde", "grades", "write_students", "generate", "delimiters"]

TIMESTAMP = "2026-01-01 00:00:00.000000 UTC"
# Appended to each copy's nbgrader_config.py: the copy is its own course root with its own gradebook,
# whatever the course's file says (an absolute root, a PostgreSQL db_url, an environment override).
OWN_FOLDER = """
# --- added by `coursekit check`: this temporary copy grades into its own folder and gradebook
import pathlib as _coursekit_check_pathlib
_coursekit_check_here = _coursekit_check_pathlib.Path(__file__).resolve().parent
c.CourseDirectory.root = str(_coursekit_check_here)
c.CourseDirectory.db_url = "sqlite:///" + str(_coursekit_check_here / "gradebook.db")
"""
# Defined at the top of a solution cell whose graded function returns a wrong value.
WRONG_VALUE = '''def _wrong_value(value):
    """A value unlike `value`, of the same kind where possible."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, dict):
        return {k: _wrong_value(v) for k, v in value.items()} if value else {"?": 0}
    if isinstance(value, (list, tuple)):
        try:
            return type(value)([_wrong_value(v) for v in value] if value else [0])
        except TypeError:
            return None
    try:
        return value + 1
    except Exception:
        return None

'''
Grade = tuple[float | None, bool]  # (auto score, needs a person), as nbgrader's gradebook holds it


# ----------------------------------------------------------------------------- both graders

def nbgrader_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment stock nbgrader needs: this Python's bin/ first on PATH (nbgrader shells out
    to `alembic` and `jupyter`), and no COURSEKIT_GRADEBOOK or COURSEKIT_EXCHANGE override, so a
    course copy never writes to the instructor's gradebook or exchange."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("COURSEKIT_GRADEBOOK", None)
    env.pop("COURSEKIT_EXCHANGE", None)
    return env


def course_copy(course_dir: Path, dest: Path) -> Path:
    """A copy of the course folder at `dest` without students' work, hidden folders or the
    gradebook, whose nbgrader_config.py makes it its own root with its own SQLite gradebook."""
    course = load_course(course_dir)
    root = course.root
    skipped = {root / d for d in (course.coursedir.submitted_directory, course.coursedir.autograded_directory,
                                  course.coursedir.feedback_directory)}
    if course.db_url.startswith("sqlite:///"):
        skipped.add(Path(course.db_url[len("sqlite:///"):]))

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n.startswith(".") or n == "__pycache__" or Path(folder, n) in skipped}
    shutil.copytree(root, dest, ignore=ignore, symlinks=True)
    with open(dest / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(OWN_FOLDER)
    return dest


def _nbgrader(course: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True)


def generate(course: Path, assignment: str, env: dict[str, str] | None = None) -> Path:
    """`nbgrader generate_assignment ASSIGNMENT --force` in a course copy (release and gradebook)."""
    done = _nbgrader(course, "generate_assignment", assignment, "--force", "--log-level=WARN",
                     env=env or nbgrader_env())
    if done.returncode:
        raise CourseError(f"nbgrader generate_assignment {assignment} failed:\n{done.stderr[-3000:]}")
    return course


def stock_autograde(course: Path, assignment: str, jobs: int = 2, env: dict[str, str] | None = None,
                    options: Sequence[str] = ("--log-level=ERROR",), timeout: float | None = None) -> None:
    """Stock `nbgrader autograde ASSIGNMENT [options]` over every student of the course, as `jobs`
    runs side by side, each over its share (`--CourseDirectory.student_id_exclude` names the
    others): stock nbgrader runs one notebook at a time and would leave a core idle.  The runs
    write to the same gradebook, a submission at a time, as two instructors' runs would.
    Raises CourseError with their output if one fails."""
    env = env or nbgrader_env()
    loaded = load_course(course)
    every = sorted(p.name for p in Path(loaded.coursedir.root, loaded.coursedir.submitted_directory).iterdir()
                   if loaded.submitted_dir(p.name, assignment).is_dir())
    shares = [every[i::jobs] for i in range(max(1, jobs)) if every[i::jobs]]
    runs = [subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", assignment, *options,
                              "--CourseDirectory.student_id_exclude=" + ",".join(s for s in every if s not in share)],
                             cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for share in shares]
    failures = []
    for run in runs:
        output, _ = run.communicate(timeout=timeout)
        if run.returncode:
            failures.append(output[-3000:])
    if failures:
        raise CourseError(f"nbgrader autograde failed in {course}:\n" + "\n".join(failures))


def grades(course: Path, assignment: str) -> dict[tuple[str, str, str], Grade]:
    """{(student, notebook, grade cell): (auto_score, needs_manual_grade)} from the course's gradebook."""
    loaded = load_course(course)
    with Gradebook(loaded.db_url, loaded.course_id) as gb:
        return {(sub.student.id, nb.name, grade.name): (grade.auto_score, grade.needs_manual_grade)
                for sub in gb.find_assignment(assignment).submissions
                for nb in sub.notebooks for grade in nb.grades}


# ----------------------------------------------------------------------------- variants

@dataclass(frozen=True)
class Variant:
    """One generated student: a name (its student id), what it is, and its notebooks as JSON."""

    name: str
    about: str
    notebooks: dict[str, dict]


def _text(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _solution_id(cell: dict) -> str | None:
    """The grade id of a solution cell, None for any other cell."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) and meta.get("solution") else None


def delimiters(course_dir: Path) -> tuple[str, str]:
    traits = ClearSolutions.class_traits()
    configured = course_config(course_dir).get("ClearSolutions", {})
    return (configured.get("begin_solution_delimeter", traits["begin_solution_delimeter"].default_value),
            configured.get("end_solution_delimeter", traits["end_solution_delimeter"].default_value))


def solution_text(master: str, delimiters: tuple[str, str]) -> str:
    """A master solution cell as a student who solved it would leave it: the solution delimiter
    lines dropped (nbgrader's ClearSolutions replaces what lies between them by the stub)."""
    begin, end = delimiters
    return "\n".join(line for line in master.split("\n") if begin not in line and end not in line)


def _plain_cell(source: str) -> ast.Module | None:
    """The cell's module if it is plain Python holding only imports, definitions and docstrings
    (moving such code around changes nothing as long as nothing calls it at definition time)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for stmt in tree.body:
        docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if not (isinstance(stmt, allowed) or docstring):
            return None
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            return None
    return tree


def _defs(tree: ast.Module, functions: Iterable[str]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name in functions]


def _rename(source: str, defs: list[ast.FunctionDef | ast.AsyncFunctionDef]) -> str:
    """`def f(` becomes `def _f_impl(` on each definition's own line (comments kept)."""
    lines = source.split("\n")
    for node in defs:
        lines[node.lineno - 1] = re.sub(rf"\bdef\s+{re.escape(node.name)}\b", f"def _{node.name}_impl",
                                        lines[node.lineno - 1], count=1)
    return "\n".join(lines)


def _wrappers(defs: list[ast.FunctionDef | ast.AsyncFunctionDef]) -> str:
    return "".join(f"def {d.name}(*args, **kwargs):\n    return {'await ' if isinstance(d, ast.AsyncFunctionDef) else ''}"
                   f"_{d.name}_impl(*args, **kwargs)\n\n\n" for d in defs)


def _needed_at_definition(tree: ast.Module) -> bool:
    """Whether a definition of the cell evaluates a name when it runs (decorators, defaults,
    annotations, class bodies): then imports cannot move below the definitions."""
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            return True
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = stmt.args
            evaluated = [*stmt.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d), stmt.returns,
                         *(a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                                  *filter(None, [args.vararg, args.kwarg])])]
            if any(node is not None and not isinstance(node, ast.Constant) for node in evaluated):
                return True
    return False


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    return decorators[0].lineno if decorators else stmt.lineno


def _reordered(source: str, tree: ast.Module) -> str | None:
    """The cell's definitions in reverse order and its imports last, where that changes nothing;
    None when there is nothing to reorder."""
    lines = source.split("\n")
    pieces = [(stmt, "\n".join(lines[_first_line(stmt) - 1:stmt.end_lineno])) for stmt in tree.body]
    imports = [text for stmt, text in pieces if isinstance(stmt, (ast.Import, ast.ImportFrom))]
    others = [text for stmt, text in pieces if not isinstance(stmt, (ast.Import, ast.ImportFrom))]
    if imports and not _needed_at_definition(tree):
        order = others[::-1] + imports
    else:
        order = imports + others[::-1]
    reordered = "\n\n\n".join(order) + "\n"
    return reordered if order != imports + others else None


class _WrongReturns(ast.NodeTransformer):
    """`return X` -> `return _wrong_value(X)` in one function's own body (not in nested ones)."""

    def __init__(self) -> None:
        self.changed = False

    def visit_Return(self, node: ast.Return) -> ast.Return:
        self.changed = True
        value = node.value or ast.Constant(None)
        return ast.Return(ast.Call(ast.Name("_wrong_value", ast.Load()), [value], []))

    def _skip(self, node: ast.AST) -> ast.AST:
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _skip


def _wrong(source: str, function: str) -> str | None:
    """The cell with `function` returning a wrong value; None if the cell is not plain Python,
    or the function never returns a value or is a generator."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == function:
            if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(stmt)):
                return None
            rewriter = _WrongReturns()
            stmt.body = [rewriter.visit(s) for s in stmt.body]
            if not rewriter.changed:
                return None
            return WRONG_VALUE + "\n" + ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    return None


def _graded_functions(source: str) -> list[str]:
    """The functions a solution cell defines at top level, read as IPython reads the cell."""
    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return []
    return [s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _new_cell(source: str, index: int) -> dict:
    return {"id": f"coursekit-check-{index}", "cell_type": "code", "execution_count": None, "metadata": {},
            "outputs": [], "source": source}


Edit = Callable[[str, dict, int], "list[dict] | None"]  # (notebook, solved cell, index) -> its cells, None: as is


def _replacing(gid: str, source: str) -> Edit:
    """An edit for `_Solved`: the cell `gid` gets `source`, the others their solution."""
    from .extract import grade_id_of  # the grader's modules load only when something is checked

    def edit(notebook: str, cell: dict, index: int) -> list[dict] | None:
        return [dict(cell, source=source)] if grade_id_of(cell) == gid else None
    return edit


def _helpers(notebook: str, cell: dict, index: int) -> list[dict] | None:
    """Each graded function's code as `_f_impl` in a new cell above; the solution cell calls it."""
    source = _text(cell)
    tree = _plain_cell(source)
    defs = _defs(tree, _graded_functions(source)) if tree else []
    if not defs:
        return None
    return [_new_cell(_rename(source, defs), index), dict(cell, source=_wrappers(defs).rstrip() + "\n")]


def _reorder(notebook: str, cell: dict, index: int) -> list[dict] | None:
    """The cell's callers above the helpers they call, definitions reversed, imports last."""
    source = _text(cell)
    tree = _plain_cell(source)
    if tree is None:
        return None
    defs = _defs(tree, _graded_functions(source))
    if defs:  # each graded function becomes a caller, above the helper that does the work
        source = _rename(source, defs)
        tree = _plain_cell(source)
        assert tree is not None  # renaming a definition keeps the cell plain
    moved = _wrappers(defs) + (_reordered(source, tree) or source)
    return [dict(cell, source=moved)] if moved != _text(cell) else None


STYLES = (("helpers", "each graded function's code in a helper, in a new cell above", _helpers),
          ("reordered", "each solution cell's definitions in another order, imports last where nothing needs "
                        "them earlier", _reorder))


class _Solved:
    """The release notebooks solved with the master's solutions, each solution cell passed through
    an edit: `_Solved(release, solutions)(edit)` -> {notebook: JSON}."""

    def __init__(self, release: dict[str, dict], solutions: dict[str, dict[str, str]]) -> None:
        self.release, self.solutions = release, solutions

    def __call__(self, edit: Edit) -> dict[str, dict]:
        out = {}
        for name, nb in self.release.items():
            copy = json.loads(json.dumps(nb))
            cells = []
            for index, cell in enumerate(copy["cells"]):
                gid = _solution_id(cell)
                if gid in self.solutions[name]:
                    solved = dict(cell, source=self.solutions[name][gid])
                    cells.extend(edit(name, solved, index) or [solved])
                else:
                    cells.append(cell)
            copy["cells"] = cells
            out[name] = copy
        return out


def variants(release: dict[str, dict], master: dict[str, dict], delimiters: tuple[str, str],
             notes: list[str] | None = None) -> list[Variant]:
    """The students `coursekit check` grades, built from the release notebooks and the master
    notebooks ({notebook name: JSON}).  `notes` collects what could not be built and why."""
    notes = [] if notes is None else notes
    solutions = {name: {gid: solution_text(_text(c), delimiters) for c in nb["cells"] if (gid := _solution_id(c))}
                 for name, nb in master.items()}
    build = _Solved(release, solutions)
    found = [Variant("solution", "the master's solutions", build(lambda n, c, i: None)),
             Variant("release", "the untouched release", json.loads(json.dumps(release)))]
    found += [Variant(f"stub-{gid}", f"the solution, with {gid} left as released", build(_replacing(gid, _text(cell))))
              for name, nb in release.items() for cell in nb["cells"]
              if (gid := _solution_id(cell)) and gid in solutions[name]]
    for style, about, edit in STYLES:
        notebooks = build(edit)
        if notebooks != found[0].notebooks:
            found.append(Variant(style, about, notebooks))
        else:
            notes.append(f"no '{style}' variant: no solution cell is plain Python made of definitions only")
    for gid, source in ((gid, source) for cells in solutions.values() for gid, source in cells.items()):
        for function in _graded_functions(source):
            wrong = _wrong(source, function)
            if wrong is None:
                notes.append(f"no wrong-value variant of {function}: it returns nothing, is a generator, or "
                             f"its cell {gid} is not plain Python")
            else:
                found.append(Variant(f"wrong-{function}", f"the solution, with {function} returning a wrong value",
                                     build(_replacing(gid, wrong))))
    return found


# ----------------------------------------------------------------------------- the check

@dataclass(frozen=True)
class CellCheck:
    """One grade cell of one variant, as both graders graded it."""

    variant: str
    notebook: str
    cell: str
    nbgrader: Grade | None  # None: nbgrader recorded no grade
    coursekit: Grade | None
    nbgrader_says: str = ""  # the error nbgrader's run showed in that cell
    coursekit_says: str = ""  # coursekit's message for that cell

    @property
    def agrees(self) -> bool:
        return self.nbgrader == self.coursekit


@dataclass
class CheckResult:
    assignment: str
    variants: list[Variant]
    cells: list[CellCheck] = field(default_factory=list)
    refused: str | None = None  # coursekit refused the assignment at planning time: why

    @property
    def agreeing(self) -> int:
        return sum(c.agrees for c in self.cells)

    @property
    def ok(self) -> bool:
        return self.refused is None and bool(self.cells) and self.agreeing == len(self.cells)

    def summary(self) -> str:
        if self.refused is not None:
            return f"check: coursekit refuses {self.assignment} at planning time, so no cell was compared"
        return f"check: {self.agreeing}/{len(self.cells)} cells agree on {len(self.variants)} variants"


def _line(text: str, limit: int = 300) -> str:
    """Text as one terminal line: whitespace runs made one space, control characters escaped
    (coursekit.printable), cut at `limit`."""
    text = printable(" ".join(str(text).split()))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _plan_lines(plans: dict) -> list[str]:
    """For each test cell: replay or sandbox, and why."""
    lines = []
    for name, plan in plans.items():
        lines.append(f"{name}.ipynb:")
        for test in plan.tests:
            calls = [f for f, tests in plan.tests_of.items() if test.id in tests]
            if test.id in plan.sandboxed:
                lines.append(f"  {test.id:<32} sandbox  {plan.sandboxed[test.id]}")
            elif calls:
                lines.append(f"  {test.id:<32} replay   its calls of {', '.join(calls)} run in the sandbox, "
                             "the test itself in the grader")
            else:
                lines.append(f"  {test.id:<32} replay   reads no graded function: the test runs in the grader")
        for gid in plan.manual:
            lines.append(f"  {gid:<32} manual   a person grades it (unanswered: 0, \"No response.\")")
        if plan.skipped:
            lines.append(f"  locked cells the grader does not run (a test in the sandbox still runs, in place, "
                         f"those it may need): {', '.join(plan.skipped)}")
    return lines


def _nbgrader_errors(course: Path, assignment: str) -> dict[tuple[str, str, str], str]:
    """{(student, notebook, grade cell): the error nbgrader's run showed there}."""
    from .extract import grade_id_of  # the grader's modules load only when something is checked

    loaded = load_course(course)
    found = {}
    for path in sorted(Path(loaded.coursedir.root, loaded.coursedir.autograded_directory).glob(f"*/{assignment}/*.ipynb")):
        student = path.parent.parent.name
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            gid = grade_id_of(cell)
            if errors and gid:
                found[(student, path.stem, gid)] = f"{errors[0].get('ename')}: {errors[0].get('evalue')}"
    return found


def write_students(course: Path, assignment: str, students: dict[str, Variant]) -> None:
    """submitted/<student>/ASSIGNMENT/ for each {student: variant}, as `nbgrader submit` leaves it:
    the release's other files (data, modules) beside the variant's notebooks, and a timestamp."""
    loaded = load_course(course)
    release = loaded.release_dir(assignment)
    for student, variant in students.items():
        folder = loaded.submitted_dir(student, assignment)
        shutil.copytree(release, folder, ignore=shutil.ignore_patterns("*.ipynb", ".*", "__pycache__"))
        for name, nb in variant.notebooks.items():
            (folder / f"{name}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (folder / "timestamp.txt").write_text(TIMESTAMP + "\n")


def check(*, assignment: str, course_dir: Path | str = ".", jobs: int = 2, keep: Path | None = None,
          out: TextIO = sys.stdout) -> CheckResult:
    """Grade the generated variants of `assignment` with stock nbgrader and with coursekit and
    compare every grade cell; print the plan and the comparison to `out`.  `keep` builds the
    temporary courses there and leaves them (else a temporary folder is removed)."""
    from . import extract, pipeline  # the grader's modules load only when something is checked

    course_dir = Path(course_dir).resolve()
    load_course(course_dir)  # a clear error for a folder that is not a course
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="coursekit-check-"))
    env = nbgrader_env()
    try:
        template = course_copy(course_dir, base / "template")
        generate(template, assignment, env)
        course = load_course(template)
        names = extract.notebooks_of(course, assignment)
        release = {n: json.loads((course.release_dir(assignment) / f"{n}.ipynb").read_text(encoding="utf-8"))
                   for n in names}
        master = {n: json.loads((course.source_dir(assignment) / f"{n}.ipynb").read_text(encoding="utf-8"))
                  for n in names}
        notes: list[str] = []
        found = variants(release, master, delimiters(template), notes)
        result = CheckResult(assignment, found)

        print(f"coursekit check {assignment}: the plan", file=out)
        try:
            with pipeline.Worker() as planner:
                plans = {n: pipeline.plan_notebook(course, assignment, n, planner) for n in names}
        except extract.PlanError as error:
            result.refused = str(error)
            print(f"  coursekit refuses the assignment: {_line(str(error), 2000)}", file=out)
            print(result.summary(), file=out)
            return result
        for line in _plan_lines(plans):
            print(line, file=out)
        print(f"\n{len(found)} variants:", file=out)
        for variant in found:
            print(f"  {variant.name:<34} {variant.about}", file=out)
        for note in notes:
            print(f"  ({note})", file=out)
        write_students(template, assignment, {v.name: v for v in found})

        stock, fast = (shutil.copytree(template, base / name, symlinks=True) for name in ("nbgrader", "coursekit"))
        print(f"\ngrading with nbgrader autograde ({jobs} side by side) and coursekit autograde ...", file=out, flush=True)
        stock_autograde(stock, assignment, jobs, env)
        summary = pipeline.autograde(assignment=assignment, course_dir=fast, force=True,
                                     out=io.StringIO(), err=io.StringIO())
        result.cells.extend(_cell_checks(found, names, stock, fast, assignment, summary.results))
        _print_comparison(result, out)
        return result
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def _cell_checks(found: list[Variant], names: list[str], stock: Path, fast: Path, assignment: str,
                 results: list) -> list[CellCheck]:
    """Each variant's grade cells as stock nbgrader (in `stock`) and coursekit (in `fast`, with its
    `results`' messages) graded them."""
    messages = {(r.submission.student, r.submission.notebook, gid): message
                for r in results for gid, message in r.messages.items() if message}
    theirs, ours, errors = grades(stock, assignment), grades(fast, assignment), _nbgrader_errors(stock, assignment)
    checks = []
    for variant in found:
        for name in names:
            for cell in sorted({cell for (s, n, cell) in theirs if s == variant.name and n == name}):
                key = (variant.name, name, cell)
                checks.append(CellCheck(variant.name, name, cell, theirs.get(key), ours.get(key),
                                        errors.get(key, ""), messages.get(key) or ""))
    return checks


def _shown(grade: Grade | None) -> str:
    if grade is None:
        return "no grade"
    score, manual = grade
    return "needs a person" if manual and score is None else f"{score:g}" + (" (needs a person)" if manual else "")


def _print_comparison(result: CheckResult, out: TextIO) -> None:
    print("\nper cell (nbgrader vs coursekit over every variant):", file=out)
    order = list(dict.fromkeys((c.notebook, c.cell) for c in result.cells))
    for notebook, cell in order:
        rows = [c for c in result.cells if (c.notebook, c.cell) == (notebook, cell)]
        agree = sum(c.agrees for c in rows)
        print(f"  {notebook}/{cell:<32} {agree}/{len(rows)} agree" + ("" if agree == len(rows) else "  DIFFER"),
              file=out)
        for c in rows:
            if not c.agrees:
                print(f"    {c.variant}: nbgrader {_shown(c.nbgrader)}"
                      + (f" ({_line(c.nbgrader_says, 160)})" if c.nbgrader_says else "")
                      + f", coursekit {_shown(c.coursekit)}"
                      + (f" ({_line(c.coursekit_says, 160)})" if c.coursekit_says else ""), file=out)
    print(result.summary(), file=out)
