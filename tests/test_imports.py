"""The package's import graph, function-level imports included, has no cycles; the graph is read from the
source with `ast`, so an import hidden inside a function counts like one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "langdec").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _runtime_imports(tree: ast.AST):
    """Every import statement except those under `if TYPE_CHECKING:` (annotations only, never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _all_imports(tree: ast.AST):
    """Every import statement, those under `if TYPE_CHECKING:` included: an annotation's import is a tie too."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def import_graph(imports=_all_imports) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                stem = ".".join([*base, *([node.module] if node.module else [])])
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_import_of_langdec_names_a_module_that_exists():
    """An import inside a function is only resolved when it runs: check them all here, so a module moved to
    another package cannot leave an import behind."""
    modules = _modules()
    missing = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in _all_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                missing += [
                    f"{path.name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.startswith("langdec") and a.name not in modules
                ]
                continue
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            stem = ".".join([*base, *([node.module] if node.module else [])])
            if not stem.startswith("langdec"):
                continue
            if stem not in modules:
                missing.append(f"{path.name}:{node.lineno} from {stem}")
                continue
            missing += [
                f"{path.name}:{node.lineno} from {stem} import {a.name}"
                for a in node.names
                if f"{stem}.{a.name}" not in modules and not _defines(modules[stem], a.name)
            ]
    assert missing == []


def _defines(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(n, (ast.FunctionDef, ast.ClassDef))
        and n.name == name
        or isinstance(n, ast.Assign)
        and any(
            getattr(e, "id", None) == name for t in n.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])
        )
        or isinstance(n, ast.AnnAssign)
        and getattr(n.target, "id", None) == name
        or isinstance(n, (ast.Import, ast.ImportFrom))
        and any((a.asname or a.name) == name for a in n.names)
        for n in tree.body
    )


def test_the_package_has_no_import_cycle_at_run_time():
    graph = import_graph(_runtime_imports)
    assert "langdec.core.config" in graph and "langdec.data.kinds.native" in graph["langdec.data.kinds"]
    assert "langdec.core.errors" in graph["langdec.data.stage"]  # function-level imports are read too
    assert cycles(graph) == []


def test_the_package_has_no_import_cycle_even_in_annotations():
    assert cycles(import_graph()) == []


# the packages by concern, lowest first: a module imports only from its own package and those listed before it
LAYERS = [
    "core",
    "tracking",
    "data",
    "models",
    "training",
    "evaluation",
    "analysis",
    "orchestration",
    "commands",
    "cli",
]


def test_the_package_is_laid_out_by_concern():
    """Nothing loose at the top but the CLI; each package says what it owns; config, which every stage reads,
    imports none of them."""
    top = sorted(p.name for p in (SRC / "langdec").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert top == sorted(["__init__.py", *LAYERS[:-1], "cli.py"])
    for package in LAYERS[:-1]:
        assert ast.get_docstring(ast.parse((SRC / "langdec" / package / "__init__.py").read_text())), package
    assert {m for m in import_graph()["langdec.core.config"]} <= {
        m for m in _modules() if m.startswith("langdec.core.")
    }
