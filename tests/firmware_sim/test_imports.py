"""firmware_sim's import graph: its modules depend one way, and on the core only."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import firmware_sim

PACKAGE = Path(firmware_sim.__file__).parent
COMPONENTS = ("gateway", "ingest", "analytics")


def _imports() -> dict[str, set[str]]:
    """Module stem -> every module it imports (absolute names, TYPE_CHECKING ones too)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                if node.module == "firmware_sim":  # `from firmware_sim import physics`
                    names |= {f"firmware_sim.{a.name}" for a in node.names}
        graph[path.stem] = names
    return graph


def test_firmware_sim_modules_import_each_other_without_cycles() -> None:
    graph = _imports()
    internal = {
        stem: {n.split(".")[1] for n in names if n.startswith("firmware_sim.")} & graph.keys()
        for stem, names in graph.items()
        if stem != "__init__"
    }
    try:
        order = list(TopologicalSorter(internal).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle in firmware_sim: {exc.args[1]}") from exc
    assert order.index("physics") < order.index("fleet")
    assert order.index("report") < min(order.index("runner"), order.index("progress"))


def test_firmware_sim_imports_no_other_component() -> None:
    offenders = {
        stem: sorted(n for n in names if n.split(".")[0] in COMPONENTS)
        for stem, names in _imports().items()
    }
    assert {stem: names for stem, names in offenders.items() if names} == {}
