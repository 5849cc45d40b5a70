"""The house plan, checked by a machine: no import cycle anywhere in ``pose``, and the floors contract holds.

``lint-imports`` (import-linter, run by ``.ci/run``) checks the floors of ``setup.cfg``; this test also
finds cycles *inside* a floor (between sibling modules of a subpackage, or a package and its modules),
which a layers contract alone would not report.
"""
import subprocess
import sys

import grimp

from tests.conftest import REPO


def strongly_connected(graph: grimp.ImportGraph) -> list:
    """Tarjan's strongly connected components of the module import graph with more than one module."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return out


def test_no_import_cycle_in_pose():
    graph = grimp.build_graph("pose")
    assert len(graph.modules) > 40
    assert strongly_connected(graph) == []


def test_cycle_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert strongly_connected(graph) == [["a.x", "a.y"]]


def test_import_contracts_hold():
    """The contracts CI runs with ``lint-imports``; a broken one names the import that crosses a floor.

    Run in a subprocess: import-linter reconfigures logging (``dictConfig``), which would silence the
    ``pose`` loggers of every later test in this process.
    """
    code = ("from importlinter.cli import lint_imports; "
            "raise SystemExit(lint_imports(config_filename='setup.cfg', no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 5 kept, 0 broken." in result.stdout
