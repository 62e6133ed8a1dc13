"""No import cycle between the files of app/. The import-linter contracts (`make lint`)
order the packages; this catches a cycle between two files of one package as well, such as
one hidden by an import inside a function or under `if TYPE_CHECKING:`."""

import grimp


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each cycle through a direct import (importer -> imported -> ... -> importer), once."""
    cycles: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.setdefault(frozenset(back), [importer, *back])
    return sorted(cycles.values(), key=len)


def test_app_has_no_import_cycles() -> None:
    cycles = import_cycles(grimp.build_graph("app"))
    assert not cycles, "import cycles in app/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_a_cycle_is_found_and_named() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    assert import_cycles(graph) == []
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
