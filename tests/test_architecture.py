"""The package's import rules, read from the source (interface tier).

``docs/architecture.md`` states them: no import cycles (imports inside functions count), no
underscore name of one module used by another, and kernels that never see the models.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "invlend"
KERNELS = ("invlend._sim.cpu", "invlend._sim.numpy_backend", "invlend._sim.cuda",
           "invlend._sim.irr", "invlend._sim.backend", "invlend._sim.layout")  # fmt: skip


def _module_names() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _module_names()


def _imports(name: str) -> tuple[set[str], list[str]]:
    """Modules ``name`` imports (anywhere in it) and the private names it takes from others."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deps: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name -> invlend module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package
                for _ in range(node.level - 1):
                    up = up.rpartition(".")[0]
                base = f"{up}.{base}" if node.module else up
            if not base.startswith("invlend"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    deps.add(full)
                    aliases[alias.asname or alias.name] = full
                elif base in MODULES:
                    deps.add(base)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{alias.name} from {base}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    deps.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            private.append(f"{aliases[node.value.id]}.{node.attr}")
    deps.discard(name)
    return deps, private


GRAPH = {name: _imports(name)[0] for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_rules_are_read_from_the_whole_package():
    assert {"invlend.engine", "invlend._sim.cpu", "invlend._sim.layout"} <= set(MODULES)
    assert "invlend._sim.layout" in GRAPH["invlend._sim.cpu"]
    # a cycle the checker must find
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_import_cycles():
    # The package's __init__ re-exports the public names and imports everything; only the
    # modules under it count (a module may import the package's own names only from modules).
    graph = {m: deps - {"invlend"} for m, deps in GRAPH.items() if m != "invlend"}
    assert _cycles(graph) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_names_across_modules(name):
    assert _imports(name)[1] == [], f"{name} uses private names of other modules"


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_do_not_import_the_models(name):
    assert not {"invlend.config", "invlend.results", "invlend.engine"} & GRAPH[name], name


def test_every_package_folder_is_a_regular_package():
    # setuptools' find_packages (pyproject.toml) leaves a folder without __init__.py out of
    # the wheel, although an editable install imports it as a namespace package.
    folders = {p.parent for p in SRC.rglob("*.py") if "__pycache__" not in p.parts}
    assert all((f / "__init__.py").exists() for f in folders), sorted(map(str, folders))
