"""The rooms of src/mienet and the direction of their imports: every import (at module top or
inside a function) goes from a room to a room of a lower or the same layer, and no two rooms
import each other, directly or round a loop. A room is a sub-package or a top-level module."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "mienet"

# Bottom first. The registries are leaves (tables read by everything, importing only errors).
LAYERS = [
    {"errors", "registry"},
    {"io", "schedule", "slurm"},
    {"config", "layout", "runlock"},
    {"data"},
    {"models", "released"},
    {"engine"},
    {"search", "report"},
    {"zoo", "pipeline", "sizing"},
    {"stages", "generate", "bench"},
    {"cli", "__main__"},
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mienet"


def imports() -> list[tuple[str, str, str]]:
    """(importing room, imported room, where) for every import of the project in src/mienet."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        src = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == "mienet":
                    names = [f"mienet.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("mienet.") and room_of(name) != src:
                    found.append((src, room_of(name), f"{rel}:{node.lineno}"))
    return found


def test_every_room_has_a_layer():
    rooms = {p.name.removesuffix(".py") for p in SRC.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert rooms == set(LAYER), (rooms ^ set(LAYER))


def test_no_import_runs_up():
    up = [f"{where}: {src} -> {dst}" for src, dst, where in imports() if LAYER[dst] > LAYER[src]]
    assert not up, "imports that run up a layer:\n" + "\n".join(up)


def test_no_two_rooms_import_each_other():
    edges: dict[str, set[str]] = {}
    for src, dst, _ in imports():
        edges.setdefault(src, set()).add(dst)

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n})) for n in edges.get(a, ()))

    loops = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a, {b})})
    assert not loops, f"rooms that import each other: {loops}"


def test_the_registries_are_leaves():
    registry = [(dst, where) for src, dst, where in imports() if src == "registry" and dst != "errors"]
    assert not registry, registry
