"""Static name analysis of notebook cells: which names a piece of code may read before it
binds them, which names it may bind, and which names' objects it may change in place.

The answers are over-approximations on purpose: the grader skips a cell, or grades a test by
replay, only when nothing the test reads can be bound or changed by what it skips, so "may
read", "may bind" and "may change" must never miss a name.  Code whose names cannot be known
statically is reported as such: a star import may bind anything (`dynamic`); ``globals()``,
``locals()``, ``vars()``, ``exec``, ``eval``, ``dir()`` and IPython magics whose effect is not
known (``%run``, ``!cmd``, ``%%writefile``) may also read anything (`reads_all`); ``%reset``
may delete any name (`dynamic`) and reads none.
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
from dataclasses import dataclass

from IPython.core.inputtransformer2 import TransformerManager

BUILTIN_NAMES = frozenset(dir(builtins))
# Calls that can read or bind any global name: code using them defeats the analysis.
DYNAMIC_CALLS = frozenset({"globals", "locals", "vars", "exec", "eval"})
# Without arguments, these read every name of the namespace (`'answer' in dir()`).
READ_ALL_CALLS = frozenset({"dir", "vars"})
# A method call made as a statement whose name says it sets state (`np.random.seed(1)`,
# `np.set_printoptions(...)`, `warnings.simplefilter(...)`) changes its receiver even when that
# is a module; other calls on a module (`np.testing.assert_allclose(...)`) do not count.
STATE_SETTER = re.compile(r"(seed|set|use|reset|reload|filterwarnings|simplefilter|rc)", re.IGNORECASE)
# Magics that delete names of the user namespace (all of them, or those named) and read none.
RESET_MAGICS = frozenset({"reset", "reset_selective", "xdel"})
# Builtins that only look at what they are handed: passing a name to them changes nothing.
LOOKING_CALLS = frozenset({"print", "len", "repr", "str", "isinstance", "issubclass", "type", "id", "hash",
                           "format", "callable", "abs", "round", "ascii"})
# IPython magics that neither read nor bind names of the user namespace nor change files (help,
# display settings, listings); any other magic but RESET_MAGICS, and every shell escape, counts
# as reading and binding anything (`%run`, `%store -r`, `!wget data.csv`, `%%writefile`).
QUIET_MAGICS = frozenset({
    "matplotlib", "pinfo", "pinfo2", "psearch", "pdoc", "pdef", "psource", "pfile", "precision",
    "pprint", "xmode", "colors", "config", "lsmagic", "magic", "who", "whos", "who_ls", "history",
    "hist", "automagic", "autocall", "page", "notebook", "connect_info", "html", "HTML",
    "markdown", "latex", "javascript", "js", "svg", "load_ext", "reload_ext", "autoreload",
    "aimport"})

def _cell_magic_call(code: str) -> tuple[str, str, str] | None:
    """Name, line and body of a transformed cell that is one ``get_ipython().run_cell_magic(...)``
    call with three string arguments, as IPython's transformer writes it; None for anything else."""
    try:
        first = ast.parse(code).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)):
        return None
    args = [arg.value for arg in first.value.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    if len(args) != 3 or len(first.value.args) != 3:
        return None
    return args[0], args[1], args[2]


def python_source(source: str, transformer: TransformerManager) -> str:
    """A cell's source as an IPython kernel runs it: magics, shell escapes and help requests
    turned into ``get_ipython()`` calls by IPython's own input transformer.  A cell magic's
    body is transformed too (IPython does that when the magic runs it), so the sandbox needs
    no IPython.  Line endings are left to Python's own rules (``\r\n`` and ``\r`` are newlines).
    """
    code = transformer.transform_cell(source)
    if not code.startswith("get_ipython().run_cell_magic("):
        return code
    magic = _cell_magic_call(code)
    if magic is None:
        return code
    name, line, body = magic
    return f"get_ipython().run_cell_magic({name!r}, {line!r}, {transformer.transform_cell(body)!r})\n"


# Cell magics that run their body as Python in the user namespace (see _runner.Shell).
CODE_CELL_MAGICS = frozenset({"time", "timeit", "prun", "capture"})


def analysis_source(code: str) -> str:
    """What to analyse of a transformed cell: a code-running cell magic's body, else the code."""
    if code.startswith("get_ipython().run_cell_magic("):
        magic = _cell_magic_call(code)
        if magic is None:
            return code
        name, line, body = magic
        if name not in CODE_CELL_MAGICS:
            return code  # the magic call itself: `_Flow` judges it (QUIET_MAGICS, else dynamic)
        target = line.split()[0] if name == "capture" and line.split() else ""
        # `%%capture out` binds `out` after the body has run
        return body + (f"\n{target} = None\n" if target.isidentifier() else "")
    return code


@dataclass(frozen=True)
class Names:
    """What one piece of code may read (before binding it) and may bind, at module level."""

    reads: frozenset[str]
    binds: frozenset[str]
    dynamic: bool  # star import, globals()/exec, an unknown magic: it may bind any name
    # Names whose object the code surely may change in place: `x[k] = v`, `x.a = v`, `x += ...`,
    # `del x[k]`, and state-setting calls made as statements (`np.random.seed(1)`, STATE_SETTER).
    mutates: frozenset[str] = frozenset()
    # Names whose object the code hands to other code, which may change it: the receiver of a
    # method call inside an expression (`y = person.increase_age()`) and every name passed to
    # a call (`shuffle(deck)`, `check(answer)`).  Callers count them as changed, except
    # modules (`np.zeros(3)` does not change `np`; a statement `np.random.seed(1)` does).
    passes: frozenset[str] = frozenset()
    # Names bound whatever path the code takes (straight-line, not deleted afterwards): a
    # binding of one of these before this cell cannot be seen after it.
    defines: frozenset[str] = frozenset()
    reads_all: bool = False  # dir(), globals(), eval/exec, an unknown magic: it may read any name
    imports: frozenset[str] = frozenset()  # names bound by `import` statements

    def changes(self, modules: frozenset[str] | set[str] = frozenset()) -> frozenset[str]:
        """Names whose object the code may change in place; a module counts only when changed
        by a statement (`np.random.seed(1)`, `np.x = 1`), not when its functions are called."""
        return self.mutates | (self.passes - modules)


def analyze(tree: ast.Module | ast.stmt) -> Names:
    visitor = _Flow()
    body = tree.body if isinstance(tree, ast.Module) else [tree]
    bound: set[str] = set()
    visitor.block(body, bound)
    return Names(frozenset(visitor.reads), frozenset(visitor.binds), visitor.dynamic,
                 frozenset(visitor.mutates), frozenset(visitor.passes), frozenset(bound),
                 visitor.reads_all, frozenset(visitor.imports))


def analyze_source(source: str, transformer: TransformerManager | None = None) -> Names:
    """Names of a cell's source as a kernel runs it; raises SyntaxError like `compile` would."""
    code = python_source(source, transformer or TransformerManager())
    return analyze(ast.parse(analysis_source(code)))


def _root(node: ast.AST) -> str | None:
    """`x` of `x.a[1].b`: the name whose object an item or attribute store changes."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_get_ipython(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython"
            and not node.args and not node.keywords)


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}


class _Flow:
    """Walks statements in order, tracking names definitely bound so far.

    A name read while not definitely bound counts as read from outside.  Only straight-line
    bindings count as definite: a name bound inside an `if`, `try` or loop body may be unbound
    afterwards, so later reads of it still count (over-approximation, never an omission).
    """

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.binds: set[str] = set()
        self.mutates: set[str] = set()
        self.passes: set[str] = set()
        self.imports: set[str] = set()
        self.dynamic = False
        self.reads_all = False

    def merge(self, other: _Flow, local: frozenset[str] | set[str] = frozenset()) -> None:
        """Take what `other` (nested code: a function body, a class body, a magic's line) may do."""
        self.reads |= other.reads - local
        self.mutates |= other.mutates - local
        self.passes |= other.passes - local
        self.dynamic |= other.dynamic
        self.reads_all |= other.reads_all

    def opaque(self) -> None:
        """Code whose effect on names cannot be known: it may read and bind any of them."""
        self.dynamic = self.reads_all = True

    def call(self, node: ast.Call) -> None:
        """What a call may do to names: change the objects it is handed (its arguments and, for a
        method, its receiver), or read and bind anything (exec, globals(), dir(), magics)."""
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in DYNAMIC_CALLS and (func.id != "vars" or not node.args):
                self.opaque()
            elif func.id in READ_ALL_CALLS and not node.args:
                self.reads_all = True
        elif isinstance(func, ast.Attribute) and (root := _root(func.value)):
            self.passes.add(root)
        if isinstance(func, ast.Name) and func.id in LOOKING_CALLS:
            return
        for arg in list(node.args) + [k.value for k in node.keywords]:
            if isinstance(arg, ast.Starred):
                arg = arg.value
            if root := _root(arg):
                self.passes.add(root)

    def magic(self, method: str, node: ast.Call) -> None:
        """A `get_ipython().<method>(...)` call, as IPython's transformer writes magics."""
        args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if method not in ("run_line_magic", "run_cell_magic") or len(args) != len(node.args) or not args:
            self.opaque()  # system, getoutput, or anything else: a shell may change any file
            return
        name, line = args[0], args[1] if len(args) > 1 else ""
        if name in QUIET_MAGICS:
            return
        if name in RESET_MAGICS:
            self.dynamic = True  # it deletes names (any of them), and reads none
            return
        if method == "run_line_magic" and name in ("time", "timeit", "prun"):
            try:
                code = ast.parse(line.lstrip())
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return  # IPython reports the syntax error; nothing runs
            inner = _Flow()
            inner.block(code.body, set())
            self.merge(inner)
            self.binds |= inner.binds
            return
        self.opaque()

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, node: ast.AST | None, bound: set[str]) -> None:
        if node is not None:
            self.reads |= self.expr_reads(node, frozenset(bound))

    def expr_reads(self, node: ast.AST, local: frozenset[str]) -> set[str]:  # noqa: C901 (one branch per kind of expression that binds names, as ast defines them)
        """Names an expression reads that are not in `local` (comprehensions and lambdas nest)."""
        if isinstance(node, ast.Name):
            if node.id == "get_ipython":
                self.opaque()  # the shell used other than through a magic call (below): its user_ns
            return {node.id} - local if isinstance(node.ctx, ast.Load) else set()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_get_ipython(node.func.value):
            self.magic(node.func.attr, node)
            return {"get_ipython"} - local
        if isinstance(node, ast.NamedExpr):
            self.binds.add(node.target.id)
        if isinstance(node, ast.Call):
            self.call(node)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            return self.comprehension_reads(node, local)
        if isinstance(node, ast.Lambda):
            reads = set()
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                reads |= self.expr_reads(default, local)
            return reads | self.expr_reads(node.body, local | {a.arg for a in _all_args(node.args)})
        reads = set()
        for child in ast.iter_child_nodes(node):
            reads |= self.expr_reads(child, local)
        return reads

    def comprehension_reads(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
                            local: frozenset[str]) -> set[str]:
        """A comprehension's reads: its variables stay inside it."""
        reads = self.expr_reads(node.generators[0].iter, local)
        inner = set(local)
        for gen in node.generators:
            if gen is not node.generators[0]:
                reads |= self.expr_reads(gen.iter, frozenset(inner))
            inner |= _targets(gen.target)
            for cond in gen.ifs:
                reads |= self.expr_reads(cond, frozenset(inner))
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            reads |= self.expr_reads(part, frozenset(inner))
        return reads

    # -- statements ----------------------------------------------------------------------------
    def block(self, body: list[ast.stmt], bound: set[str]) -> None:
        for stmt in body:
            self.stmt(stmt, bound)

    def bind(self, names: set[str], bound: set[str]) -> None:
        self.binds |= names
        bound |= names

    def stmt(self, node: ast.stmt, bound: set[str]) -> None:  # noqa: C901, PLR0912, PLR0915 (one branch per kind of statement, as ast defines them)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                self.expr(deco, bound)
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                self.expr(default, bound)
            self.function_body(node)
            self.bind({node.name}, bound)
        elif isinstance(node, ast.ClassDef):
            for sub in node.decorator_list + node.bases + [k.value for k in node.keywords]:
                self.expr(sub, bound)
            class_body = _Flow()
            class_body.block(node.body, set())
            self.merge(class_body, bound)
            self.bind({node.name}, bound)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = set()
            for alias in node.names:
                if alias.name == "*":
                    self.dynamic = True
                    continue
                names.add(alias.asname or alias.name.split(".")[0])
            self.bind(names, bound)
            self.imports |= names
        elif isinstance(node, ast.Assign):
            self.expr(node.value, bound)
            for target in node.targets:
                self.store_target(target, bound)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.value, bound)
            self.expr(node.annotation, bound)
            if node.value is not None:
                self.store_target(node.target, bound)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value, bound)
            if isinstance(node.target, ast.Name):
                if node.target.id not in bound:
                    self.reads.add(node.target.id)
                self.mutates.add(node.target.id)  # `items += [x]` changes the list in place
                self.bind({node.target.id}, bound)
            else:
                self.store_target(node.target, bound)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and isinstance(node.value.func, ast.Attribute) and (root := _root(node.value.func.value)):
            if STATE_SETTER.match(node.value.func.attr):  # `np.random.seed(1)`: even a module changes
                self.mutates.add(root)
            self.expr(node, bound)  # any other method call hands its receiver over (`passes`)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter, bound)
            inner = set(bound)
            self.store_target(node.target, inner)
            self.block(node.body, inner)
            self.block(node.orelse, set(bound))
        elif isinstance(node, ast.While):
            self.expr(node.test, bound)
            self.block(node.body, set(bound))
            self.block(node.orelse, set(bound))
        elif isinstance(node, ast.If):
            self.expr(node.test, bound)
            self.block(node.body, set(bound))
            self.block(node.orelse, set(bound))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            inner = set(bound)
            for item in node.items:
                self.expr(item.context_expr, bound)
                if item.optional_vars is not None:
                    self.store_target(item.optional_vars, inner)
            self.block(node.body, inner)
        elif isinstance(node, ast.Try):
            self.try_block(node.body, node.handlers, node.orelse, node.finalbody, bound)
        elif sys.version_info >= (3, 11) and isinstance(node, ast.TryStar):  # try/except*, same fields
            self.try_block(node.body, node.handlers, node.orelse, node.finalbody, bound)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.expr(target, bound)
                bound -= _targets(target)
                if isinstance(target, (ast.Attribute, ast.Subscript)) and (root := _root(target)):
                    self.mutates.add(root)
                else:
                    self.binds |= _targets(target)  # `del f` changes what the name means
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.binds |= set(node.names)
        else:
            # Expression statements, return, raise, assert, match, ...: read everything in them,
            # and count any name they store as a possible binding.
            for inner_node in ast.walk(node):
                if isinstance(inner_node, ast.Name) and isinstance(inner_node.ctx, ast.Store):
                    self.binds.add(inner_node.id)
            self.expr(node, bound)

    def try_block(self, body: list[ast.stmt], handlers: list[ast.ExceptHandler], orelse: list[ast.stmt],
                  finalbody: list[ast.stmt], bound: set[str]) -> None:
        self.block(body, set(bound))
        for handler in handlers:
            self.expr(handler.type, bound)
            inner = set(bound)
            if handler.name:
                self.bind({handler.name}, inner)
            self.block(handler.body, inner)
        self.block(orelse, set(bound))
        self.block(finalbody, set(bound))

    def store_target(self, target: ast.AST, bound: set[str]) -> None:
        if isinstance(target, ast.Name):
            self.bind({target.id}, bound)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.store_target(elt, bound)
        elif isinstance(target, ast.Starred):
            self.store_target(target.value, bound)
        else:  # x[i] = ..., x.a = ...: reads x and changes its object
            self.expr(target, bound)
            if root := _root(target):
                self.mutates.add(root)

    def function_body(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """Globals a function may read when called: body reads minus its parameters and locals."""
        params = {a.arg for a in _all_args(node.args)}
        declared_global: set[str] = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Global):
                declared_global |= set(sub.names)
        inner = _Flow()
        inner.block(node.body, set(params))
        local = (inner.binds | params) - declared_global
        self.merge(inner, local)  # what a call may do, counted where the function is defined
        self.binds |= declared_global


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return list(args.posonlyargs) + list(args.args) + list(args.kwonlyargs) + extra
