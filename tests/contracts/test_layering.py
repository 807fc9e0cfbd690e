"""The packages form layers and no module imports itself back: core <- targets <- quantization, and inside the
core the layer order declared in pyproject.toml (`[tool.importlinter]`), checked by import-linter.

Every import counts, including those inside functions (a lazy import is still a dependency), and no product
module imports by computed name (importlib), which no import checker could see: the one exception is loading
the user's own `package.module:function` references."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edge_pipeline", "quantization", "targets")
MAY_IMPORT = {"edge_pipeline": set(), "targets": {"edge_pipeline"}, "quantization": {"edge_pipeline", "targets"}}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_module_imports_itself_back() -> None:
    edges, cycles = graph(), []
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_packages_import_only_the_layers_below() -> None:
    wrong = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets
                   if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in MAY_IMPORT[a.split(".")[0]])
    assert not wrong, wrong


def test_the_declared_layer_contracts_hold() -> None:
    """import-linter reads the contracts from pyproject.toml: a broken one names the import chain."""
    proc = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout, proc.stdout[-2000:]


DYNAMIC_IMPORT_ALLOWED = {"edge_pipeline.sources.user_code"}   # the user's own module:function references


def test_no_product_module_imports_by_computed_name() -> None:
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__",
                                                                          "import_module"):
                found.append(f"{name}:{node.lineno}")
    assert {f.split(":")[0] for f in found} <= DYNAMIC_IMPORT_ALLOWED, found
