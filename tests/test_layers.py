"""The house's arrows, read from the source: every import between persona_studio's packages points down
(app/cli -> stages -> workspace -> avatar -> render -> body), stages never import one another, and no
modules import each other in a circle. Imports inside functions count as much as those at the top."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "persona_studio"

# Floor of each top-level module or package of persona_studio: a module may import its own package and
# anything on a lower floor, never one on its own floor (sideways) or above (upwards).
FLOORS: dict[str, int] = {
    "": 0,  # persona_studio/__init__.py (the version)
    "fileio": 0, "paths": 0, "progress": 0, "cpu_share": 0, "device": 0,
    "body": 1,
    "render": 2,
    "avatar": 3,
    "workspace": 4,
    "capture": 5, "generate": 5, "train": 5, "export": 5, "viewer": 5,
    "settings": 6,
    "app": 7, "batch": 7,
    "cli": 8,
    "__main__": 9,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The persona_studio modules ``path`` imports (``from a import b`` counts a.b when b is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported_modules(path, set(mods)) for name, path in mods.items()}


def top_level(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a set of mutual imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
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
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_floor():
    unplaced = sorted({top_level(m) for m in modules()} - set(FLOORS))
    assert not unplaced, f"give these a floor in FLOORS: {unplaced}"


def against_the_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Each import between packages that goes sideways or upwards, as "a -> b (sideways)"."""
    wrong = []
    for module, imports in sorted(graph.items()):
        floor, home = FLOORS[top_level(module)], top_level(module)
        for target in sorted(imports):
            there = top_level(target)
            if there != home and FLOORS[there] >= floor:
                kind = "sideways" if FLOORS[there] == floor else "upwards"
                wrong.append(f"{module} -> {target} ({kind})")
    return wrong


def test_imports_point_down_and_stages_never_import_each_other():
    wrong = against_the_arrows(import_graph())
    assert not wrong, "imports against the arrows:\n" + "\n".join(wrong)


def test_no_import_circles():
    found = circles(import_graph())
    assert not found, "modules importing each other in a circle:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_dearpygui_below_app_and_no_opengl_outside_viewer():
    wrong = []
    for name, path in modules().items():
        top = top_level(name)
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for imported in names:
                root = imported.split(".")[0]
                if root == "dearpygui" and top != "app":
                    wrong.append(f"{name} imports {imported}")
                if root in ("OpenGL", "glfw") and top not in ("viewer", "app"):
                    wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_the_checks_see_sideways_and_upward_imports_and_circles():
    """The checks above on a made-up graph: they can fail."""
    graph = {"persona_studio.train.a": {"persona_studio.generate.b"},
             "persona_studio.generate.b": {"persona_studio.body.c"},
             "persona_studio.body.c": {"persona_studio.settings"}, "persona_studio.settings": set(),
             "persona_studio.app.x": {"persona_studio.app.y"}, "persona_studio.app.y": {"persona_studio.app.x"}}
    assert against_the_arrows(graph) == ["persona_studio.body.c -> persona_studio.settings (upwards)",
                                         "persona_studio.train.a -> persona_studio.generate.b (sideways)"]
    assert circles(graph) == [["persona_studio.app.x", "persona_studio.app.y"]]
