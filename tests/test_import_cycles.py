"""No import cycles among the project's own modules: each module can be read after what it imports."""

from __future__ import annotations

import grimp

PACKAGES = ("shared", "services", "deploy", "simulator", "bench")


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One shortest cycle through each import that is part of a cycle, each cycle listed once."""
    cycles: dict[frozenset[str], tuple[str, ...]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = (importer, *back)
                cycles.setdefault(frozenset(cycle), cycle)
    return sorted(cycles.values())


def test_the_project_has_no_import_cycles() -> None:
    # Imports inside functions count: a deferred import hides a cycle, it does not remove it.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert "services.scoring.signals" in graph.modules  # the graph really holds the tree
    cycles = import_cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_a_cycle_is_found_however_long_and_however_imported() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.leaf"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg.a", imported="pkg.leaf")
    assert import_cycles(graph) == [("pkg.a", "pkg.b", "pkg.c", "pkg.a")]

    graph.remove_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.leaf")
    assert import_cycles(graph) == []
