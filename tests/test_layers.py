"""The import direction, read from the source with ``ast``: ``server/`` is packaged by layer
and imports only go down the layers; ``nntp/`` and ``transcode/`` are libraries that import
neither ``server/`` nor each other, nor aiohttp's web layer or SQLite."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: server's layers, lowest first (ARCHITECTURE.md and the README's "Code layout").
LAYERS: dict[str, int] = {
    "errors": 0,
    "logs": 0,
    "keys": 0,
    "metrics": 0,
    "config": 1,
    "store": 2,
    "discovery": 3,
    "jobs": 4,
    "playback": 5,
    "mirror": 5,
    "http": 6,
    "api": 7,
    "ui": 8,
    "app": 9,
    "cli": 10,
    "__main__": 11,
}
#: Vocabulary every layer may use. Each imports nothing of Matinee at run time (checked
#: below); keys.py names the services' classes for typing only.
LEAVES = frozenset(
    {"server.errors", "server.logs", "server.keys", "server.metrics", "server.jobs.lifecycle"}
)


def modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, *, typing_too: bool = True) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved; those
    under ``if TYPE_CHECKING:`` only when ``typing_too``."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    if not typing_too:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for inner in node.body:
                    skip.update(id(n) for n in ast.walk(inner))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            base = node.module or ""
            for alias in node.names:
                # "from server.ui import pages" imports the module server.ui.pages
                candidate = f"{base}.{alias.name}"
                is_module = (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists()
                yield node.lineno, candidate if is_module else base


def layer_of(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "server" and len(parts) > 1, module
    assert parts[1] in LAYERS, f"{module}: not in any layer; add its package to LAYERS"
    return LAYERS[parts[1]]


def test_server_imports_only_go_down_the_layers() -> None:
    wrong = []
    for module, path in modules("server"):
        if module == "server":
            continue
        mine = layer_of(module)
        typing_too = module != "server.keys"
        for line, target in imports(path, typing_too=typing_too):
            if not target.startswith("server.") or target in LEAVES:
                continue
            if layer_of(target) > mine:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaves_import_nothing_of_matinee_at_run_time(leaf: str) -> None:
    path = ROOT / (leaf.replace(".", "/") + ".py")
    found = [t for _, t in imports(path, typing_too=False) if t.split(".")[0] in PACKAGES]
    assert not found, f"{leaf} imports {found}"


PACKAGES = ("server", "nntp", "transcode", "web", "tests", "bench")
LIBRARY_RULES = {
    # package: what it must never import
    "nntp": ("server", "transcode", "aiohttp.web", "aiohttp.web_request", "sqlite3", "aiosqlite"),
    "transcode": ("server", "nntp", "aiohttp.web", "aiohttp.web_request", "sqlite3", "aiosqlite"),
}


@pytest.mark.parametrize("package", sorted(LIBRARY_RULES))
def test_the_libraries_stay_libraries(package: str) -> None:
    forbidden = LIBRARY_RULES[package]
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: imports {target}"
        for _, path in modules(package)
        for line, target in imports(path)
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_tests_or_the_benchmarks() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: imports {target}"
        for package in ("server", "nntp", "transcode")
        for _, path in modules(package)
        for line, target in imports(path)
        if target.split(".")[0] in ("tests", "bench")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    # The walk itself must catch what it is for: a store module importing the HTTP layer.
    bad = tmp_path / "bad.py"
    bad.write_text("from server.http.sessions import Sessions\nimport server.ui.pages\n")
    targets = [t for _, t in imports(bad)]
    assert targets == ["server.http.sessions", "server.ui.pages"]
    assert layer_of(targets[0]) > layer_of("server.store.db")
