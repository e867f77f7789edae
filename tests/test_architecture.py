"""The package's dependency direction, as docs/architecture.md draws it, holds for every import."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ektp_card"
DOC = ROOT / "docs" / "architecture.md"


def _layers() -> dict[str, int]:
    block = re.search(r"```layers\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/architecture.md has no layers block"
    layers: dict[str, int] = {}
    for line in block.group(1).splitlines():
        number, *parts = line.split()
        for part in parts:
            assert part not in layers, f"{part} is on two layers"
            layers[part] = int(number)
    return layers


def _part(module: str) -> str:
    """The subpackage or top-level module a dotted module name belongs to."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "ektp_card"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ektp_card module ``path`` imports, at module level or inside a function: a lazy import is
    a dependency all the same."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ektp_card")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ektp_card":
                # `from ektp_card import errors` imports the module errors.
                found.update(f"ektp_card.{a.name}" for a in node.names
                             if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").exists())
            elif node.module.startswith("ektp_card."):
                found.add(node.module)
    return found


def _edges() -> list[tuple[str, str, str]]:
    """(importing part, imported part, where) for every import that crosses parts."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        for target in _imports(path):
            a, b = _part(source), _part(target)
            if a != b:
                edges.append((a, b, f"{source} imports {target}"))
    return edges


def test_every_part_is_on_a_layer() -> None:
    layers = _layers()
    parts = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    parts |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts.add("ektp_card")  # the package's own __init__: the version and the root exception
    assert parts - set(layers) == set(), "add these to the layers block of docs/architecture.md"
    assert set(layers) - parts == set(), "the layers block names parts that do not exist"


def _violations(edges: list[tuple[str, str, str]], layers: dict[str, int]) -> list[str]:
    return [f"{where} (layer {layers[a]} -> {layers[b]})" for a, b, where in edges if layers[b] >= layers[a]]


def test_imports_point_down() -> None:
    assert _violations(_edges(), _layers()) == []


def test_no_cycle_between_parts() -> None:
    graph: dict[str, set[str]] = {}
    for a, b, _ in _edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    # A reader module that imported the emulator would be caught: prove _imports sees such lines.
    module = tmp_path / "probe.py"
    module.write_text(
        "def f():\n    from ektp_card.virtual.card import VirtualCard\n    from ektp_card import errors\n"
    )
    assert _imports(module) == {"ektp_card.virtual.card", "ektp_card.errors"}
    layers = _layers()
    assert _violations([("verify", "virtual", "verify imports virtual")], layers) != []
    assert _violations([("session", "virtual", "a peer")], layers) != []
    assert _violations([("verify", "session", "downwards")], layers) == []


@pytest.mark.parametrize(
    "module",
    ["ektp_card.verify", "ektp_card.verify.card", "ektp_card.verify.passport", "ektp_card.personalize",
     "ektp_card.access", "ektp_card.session.document"],
)
def test_the_reader_loads_no_emulator(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('ektp_card.virtual')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


#: Third-party packages the library leaves to its faces (the CLI, the station) or to one adapter module.
_CONFINED = {
    "click": (), "rich": (), "starlette": (), "jinja2": (), "uvicorn": (), "multipart": (), "PIL": (),
    "smartcard": ("ektp_card.apdu.pcsc",), "nfc": ("ektp_card.apdu.nfc",),
    "pkcs11": ("ektp_card.pki.pkcs11",), "psycopg": ("ektp_card.desk.postgres",),
}
_FACES = ("ektp_card._cli", "ektp_card._station", "ektp_card.__main__")


def _third_party(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_library_keeps_faces_and_adapters_in_their_place() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module.startswith(_FACES):
            continue
        for package in _third_party(path) & set(_CONFINED):
            if module not in _CONFINED[package]:
                wrong.append(f"{module} imports {package}")
    assert wrong == []
