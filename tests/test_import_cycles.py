"""No import circle in service/, cards/ or tacro_dev/: every module can be read, and changed, knowing
only what it imports. Imports inside functions count too, since a deferred import only hides a circle
until someone moves it; an import for type checking only (``if TYPE_CHECKING:``) does not run and is
not counted."""

from __future__ import annotations

import grimp

PACKAGES = ("service", "cards", "tacro_dev")


def circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(imports.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    ours = graph.modules
    imports = {module: graph.find_modules_directly_imported_by(module) & ours for module in ours}
    assert circles(imports) == [], "import circle: break it by moving the shared part to a module both import"


def test_a_circle_is_found():
    """The check can fail: config -> store -> migrate -> config is one circle; a spur is not."""
    imports = {
        "config": {"store"},
        "store": {"migrate", "files"},
        "migrate": {"config"},
        "files": set(),
    }
    assert circles(imports) == [["config", "migrate", "store"]]
