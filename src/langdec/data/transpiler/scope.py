"""Which names in a parsed file really mean a built-in, and where the soft keywords are.

A built-in name is translated only where Python would resolve it to the builtins
module: not where the file binds it (assignment, parameter, import, def/class,
for/with/except/match targets, global declarations) in the scope that the use
resolves through. Attributes, keyword arguments and import aliases are not
`ast.Name` nodes, so they are never candidates in the first place.

Conservative choices (documented in the README): a module-level binding anywhere
in the file shadows the built-in for the whole module, and `from m import *` is
assumed not to shadow built-ins (we cannot know what it imports).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field

Position = tuple[int, int]  # (lineno, utf-8 byte column) as ast reports it


@dataclass
class _Scope:
    kind: str  # module | function | class | comprehension
    parent: "_Scope | None"
    bound: set[str] = field(default_factory=set)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)


@dataclass
class ScopeFacts:
    builtin_uses: set[Position]
    match_keywords: set[Position]
    case_patterns: list[Position]


def analyse(tree: ast.AST, candidates: frozenset[str]) -> ScopeFacts:
    """Positions of `ast.Name` loads of `candidates` that resolve to the builtins module."""
    visitor = _Visitor(candidates)
    limit = sys.getrecursionlimit()
    # Machine-generated files nest expressions thousands deep; give the walk room,
    # and let the caller report the file if even that is not enough.
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        visitor.visit(tree)
    finally:
        sys.setrecursionlimit(limit)
    builtin = {pos for name, scope, pos in visitor.uses if _is_builtin(name, scope, visitor.module)}
    return ScopeFacts(builtin, visitor.match_keywords, visitor.case_patterns)


def _is_builtin(name: str, scope: _Scope, module: _Scope) -> bool:
    current: _Scope | None = scope
    first = True
    while current is not None:
        if name in current.declared_global:
            return name not in module.bound
        # Class bodies are not enclosing scopes for the functions defined in them.
        if current.kind != "class" or first:
            if name in current.bound or name in current.declared_nonlocal:
                return False
        first = False
        current = current.parent
    return True


class _Visitor(ast.NodeVisitor):
    def __init__(self, candidates: frozenset[str]) -> None:
        self.candidates = candidates
        self.module = _Scope("module", None)
        self.scope = self.module
        self.uses: list[tuple[str, _Scope, Position]] = []
        self.match_keywords: set[Position] = set()
        self.case_patterns: list[Position] = []

    # -- helpers -------------------------------------------------------------
    def _bind(self, name: str, scope: _Scope | None = None) -> None:
        (scope or self.scope).bound.add(name)

    def _enter(self, kind: str) -> _Scope:
        self.scope = _Scope(kind, self.scope)
        return self.scope

    def _leave(self, scope: _Scope) -> None:
        assert scope.parent is not None
        self.scope = scope.parent

    def _visit_all(self, nodes) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node)

    def _visit_arguments_outside(self, args: ast.arguments) -> None:
        self._visit_all(args.defaults)
        self._visit_all(args.kw_defaults)
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if a is not None and a.annotation is not None:
                self.visit(a.annotation)

    def _bind_arguments(self, args: ast.arguments) -> None:
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if a is not None:
                self._bind(a.arg)

    # -- names ---------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id in self.candidates:
                self.uses.append((node.id, self.scope, (node.lineno, node.col_offset)))
        else:
            self._bind(node.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        # A walrus inside a comprehension binds in the enclosing non-comprehension scope.
        target_scope = self.scope
        while target_scope.kind == "comprehension" and target_scope.parent is not None:
            target_scope = target_scope.parent
        self._bind(node.target.id, target_scope)
        self.visit(node.value)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.declared_nonlocal.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    # -- scopes --------------------------------------------------------------
    def _function(self, node, name: str | None, body) -> None:
        if name is not None:
            self._bind(name)
        self._visit_all(getattr(node, "decorator_list", ()))
        self._visit_arguments_outside(node.args)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        scope = self._enter("function")
        self._bind_arguments(node.args)
        if isinstance(body, list):
            self._visit_all(body)
        else:
            self.visit(body)
        self._leave(scope)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node, node.name, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node, None, node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        self._visit_all(node.decorator_list)
        self._visit_all(node.bases)
        self._visit_all(node.keywords)
        scope = self._enter("class")
        self._visit_all(node.body)
        self._leave(scope)

    def _comprehension(self, node, elements) -> None:
        generators = node.generators
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        scope = self._enter("comprehension")
        for index, gen in enumerate(generators):
            self.visit(gen.target)
            if index:
                self.visit(gen.iter)
            self._visit_all(gen.ifs)
        self._visit_all(elements)
        self._leave(scope)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp  # type: ignore[assignment]
    visit_GeneratorExp = visit_ListComp  # type: ignore[assignment]

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])

    # -- structural pattern matching ----------------------------------------
    def visit_Match(self, node: ast.Match) -> None:
        self.match_keywords.add((node.lineno, node.col_offset))
        self.visit(node.subject)
        for case in node.cases:
            self.case_patterns.append((case.pattern.lineno, case.pattern.col_offset))
            self.visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            self._visit_all(case.body)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)
