"""Static name analysis of notebook cells: which names a piece of code may read before it
binds them, and which names it may bind.

Both answers are over-approximations on purpose: the grader skips a cell only when no test
can read anything it defines, so "may read" must never miss a name and "may define" must
never miss one either.  Code whose names cannot be known statically (star imports,
``globals()``, ``exec``) is reported as such, and callers treat it as defining everything.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass

BUILTIN_NAMES = frozenset(dir(builtins))
# Calls that can read or bind any global name: code using them defeats the analysis.
DYNAMIC_CALLS = frozenset({"globals", "locals", "vars", "exec", "eval"})

_MAGIC = re.compile(r"^(\s*)(%|!)")


def strip_magics(source: str) -> str:
    """Replace IPython magics and shell escapes by `pass`, keeping line numbers and indentation.

    A cell magic (``%%...`` on the first line) turns the whole cell into something that is not
    Python, so the cell becomes empty.
    """
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join(_MAGIC.sub(r"\1pass  # ", line) if _MAGIC.match(line) else line
                     for line in source.split("\n"))


@dataclass(frozen=True)
class Names:
    """What one piece of code may read (before binding it) and may bind, at module level."""

    reads: frozenset[str]
    binds: frozenset[str]
    dynamic: bool  # star import or globals()/exec: the analysis cannot be trusted


def analyze(tree: ast.AST) -> Names:
    visitor = _Flow()
    body = tree.body if isinstance(tree, ast.Module) else [tree]
    visitor.block(body, set())
    return Names(frozenset(visitor.reads), frozenset(visitor.binds), visitor.dynamic)


def analyze_source(source: str) -> Names:
    """Names of a cell's source; raises SyntaxError like `compile` would."""
    return analyze(ast.parse(strip_magics(source)))


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
        self.dynamic = False

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, node: ast.AST | None, bound: set[str]) -> None:
        if node is not None:
            self.reads |= self.expr_reads(node, frozenset(bound))

    def expr_reads(self, node: ast.AST, local: frozenset[str]) -> set[str]:
        """Names an expression reads that are not in `local` (comprehensions and lambdas nest)."""
        if isinstance(node, ast.Name):
            return {node.id} - local if isinstance(node.ctx, ast.Load) else set()
        if isinstance(node, ast.NamedExpr):
            self.binds.add(node.target.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_CALLS:
            self.dynamic = True
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
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
        if isinstance(node, ast.Lambda):
            reads = set()
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                reads |= self.expr_reads(default, local)
            return reads | self.expr_reads(node.body, local | {a.arg for a in _all_args(node.args)})
        reads = set()
        for child in ast.iter_child_nodes(node):
            reads |= self.expr_reads(child, local)
        return reads

    # -- statements ----------------------------------------------------------------------------
    def block(self, body: list[ast.stmt], bound: set[str]) -> None:
        for stmt in body:
            self.stmt(stmt, bound)

    def bind(self, names: set[str], bound: set[str]) -> None:
        self.binds |= names
        bound |= names

    def stmt(self, node: ast.stmt, bound: set[str]) -> None:
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
            inner = _Flow()
            inner.block(node.body, set())
            self.reads |= inner.reads - bound
            self.dynamic |= inner.dynamic
            self.bind({node.name}, bound)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = set()
            for alias in node.names:
                if alias.name == "*":
                    self.dynamic = True
                    continue
                names.add(alias.asname or alias.name.split(".")[0])
            self.bind(names, bound)
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
                self.bind({node.target.id}, bound)
            else:
                self.store_target(node.target, bound)
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
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.block(node.body, set(bound))
            for handler in node.handlers:
                self.expr(handler.type, bound)
                inner = set(bound)
                if handler.name:
                    self.bind({handler.name}, inner)
                self.block(handler.body, inner)
            self.block(node.orelse, set(bound))
            self.block(node.finalbody, set(bound))
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.expr(target, bound)
                bound -= _targets(target)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.binds |= set(node.names)
        else:
            # Expression statements, return, raise, assert, match, ...: read everything in them,
            # and count any name they store as a possible binding.
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    self.binds.add(sub.id)
            self.expr(node, bound)

    def store_target(self, target: ast.AST, bound: set[str]) -> None:
        if isinstance(target, ast.Name):
            self.bind({target.id}, bound)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.store_target(elt, bound)
        elif isinstance(target, ast.Starred):
            self.store_target(target.value, bound)
        else:  # x[i] = ..., x.a = ...: reads x
            self.expr(target, bound)

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
        self.reads |= inner.reads - local
        self.binds |= declared_global
        self.dynamic |= inner.dynamic


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return list(args.posonlyargs) + list(args.args) + list(args.kwonlyargs) + extra
