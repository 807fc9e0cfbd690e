"""Style holds everywhere, checked by ruff with the settings in pyproject.toml (`[tool.ruff]`): no line over 120
columns, no syntax error, no undefined name."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing() -> None:
    """A finding names the file, line and column; wrap the line (implicit string concatenation, arguments on
    continuation lines, a long assert in parentheses) rather than silencing it."""
    proc = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "--output-format=concise",
                           "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
