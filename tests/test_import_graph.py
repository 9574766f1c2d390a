"""The project's import graph: no cycles, and services built on shared, never on each other."""

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


def owner(module: str) -> str:
    """The service a module belongs to (`services.alerts`), or its top-level package (`shared`)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "services" and len(parts) > 1 else parts[0]


def crossings(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Imports into a service from outside it: from shared, or from another service."""
    return sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if owner(imported).startswith("services.") and owner(importer) != owner(imported)
        # services.schema gathers every service's tables for alembic, and only that.
        and importer != "services.schema"
    )


def test_shared_imports_no_service_and_no_service_imports_another() -> None:
    graph = grimp.build_graph("shared", "services", cache_dir=None)
    assert {"services.ingest", "services.scoring", "services.alerts", "services.surveys"} <= set(
        graph.find_children("services"))
    found = crossings(graph)
    assert found == [], "imports across services, or from shared into services:\n" + "\n".join(
        f"{importer} -> {imported}" for importer, imported in found)


def test_a_crossing_is_found_from_shared_and_from_another_service() -> None:
    graph = grimp.ImportGraph()
    for module in ("shared", "shared.db", "services", "services.schema", "services.alerts",
                   "services.alerts.store", "services.alerts.consumer", "services.scoring",
                   "services.scoring.engine"):
        graph.add_module(module)
    graph.add_import(importer="services.alerts.consumer", imported="services.alerts.store")
    graph.add_import(importer="services.alerts.store", imported="shared.db")
    graph.add_import(importer="services.schema", imported="services.alerts.store")
    assert crossings(graph) == []

    graph.add_import(importer="services.scoring.engine", imported="services.alerts.store")
    graph.add_import(importer="shared.db", imported="services.scoring")
    assert crossings(graph) == [("services.scoring.engine", "services.alerts.store"),
                                ("shared.db", "services.scoring")]


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
