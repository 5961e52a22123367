"""The layout's import rules (docs/layout.md), read from the source: three floors, each importing
only from the floors below it (anywhere in a module), and no module importing, as it loads, one
that imports it back however indirectly (type-checking imports count: they are the same circle
to a reader; an import inside a function, which runs later, does not)."""

import ast

from tests.live import ROOT

# Each package and the packages it may import (docs/layout.md).
MAY_IMPORT = {
    "core": set(),
    "tools": {"core"},
    "snippets": {"core"},
    "assistants": {"core", "tools", "snippets"},
    "threads": {"core", "assistants"},
    "outcomes": {"core", "assistants"},
    "config_backend": {"core", "tools", "snippets", "assistants", "threads", "outcomes"},
}


def project_modules() -> dict[str, ast.Module]:
    """Every module of the packages (migrations aside), by dotted name, parsed."""
    modules = {}
    for package in MAY_IMPORT:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return modules


def statements_run_on_load(tree: ast.Module):
    """The module's statements outside functions and classes (inside `if` and `try` too)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If | ast.Try):
            pending += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            pending += [line for handler in getattr(node, "handlers", []) for line in handler.body]


def imported_modules(tree: ast.Module, known: dict, *, on_load_only: bool = False) -> set[str]:
    """The project modules `tree` imports (as it loads, or anywhere): `from a.b import c` names
    a.b.c if that is a module, else a.b."""
    names = set()
    for node in statements_run_on_load(tree) if on_load_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in known else node.module)
    return {name for name in names if name in known}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected, more than one)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module):
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                lowest[module] = min(lowest[module], lowest[other])
            elif other in stack:
                lowest[module] = min(lowest[module], index[other])
        if lowest[module] == index[module]:
            group = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(group) > 1:
                circles.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_one_that_imports_it_back():
    modules = project_modules()
    graph = {
        name: imported_modules(tree, modules, on_load_only=True) - {name}
        for name, tree in modules.items()
    }
    assert import_circles(graph) == []


def test_no_package_imports_one_above_it():
    modules = project_modules()
    upward = [
        f"{name} imports {imported}"
        for name, tree in modules.items()
        for imported in imported_modules(tree, modules)
        if imported.split(".")[0] not in {name.split(".")[0], *MAY_IMPORT[name.split(".")[0]]}
    ]
    assert upward == []
