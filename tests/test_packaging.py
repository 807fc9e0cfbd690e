"""The wheel carries what an installed edgepipe reads at run time: the demo app templates and the schemas."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_sample_apps_and_schemas(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("edge_pipeline", "quantization", "targets", "sample_apps"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("edgepipe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sample_apps").rglob("*") if p.is_file()
                 and "__pycache__" not in p.parts}
    assert templates and templates <= names, sorted(templates - names)[:5]
    assert "edge_pipeline/schemas/report.schema.json" in names
    assert "targets/runners/tfjs_node/runner.cjs" in names
