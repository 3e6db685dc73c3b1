"""The package's import graph has no cycle (type-checking imports included), so data and
outcomes flow one way: see docs/architecture.md."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "target_usage"


def package_imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports, read from the source."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found |= {n.split(".")[1] for n in names if n.startswith("target_usage.")}
        graph[path.stem] = found - {path.stem}
    return graph


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = package_imports()
    assert {"sinks", "target", "transport", "outcomes"} <= graph.keys()
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(
            f"import cycle in target_usage: {' -> '.join(error.args[1])}"
        ) from None
    assert order.index("transport") < order.index("sinks") < order.index("target")


def test_delivery_does_not_know_sinks_or_the_target() -> None:
    graph = package_imports()
    assert not graph["transport"] & {"sinks", "target", "outcomes", "report"}
    assert "target" not in graph["sinks"]
