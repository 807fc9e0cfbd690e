"""`edgepipe explore`: an artifact's graph in Model Explorer with the build's per-op overlays, served on
127.0.0.1 until Ctrl-C. The checks are `edge_pipeline.api.explore`; the server is `explorer.server`."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import webbrowser
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_pipeline import api
from edge_pipeline.explorer.checks import Exploration


def explore(
    report: Annotated[Path, typer.Argument(
        help="A build's report.json, or the build folder holding it.")] = api.DEFAULT_REPORT,
    artifact: Annotated[Optional[str], typer.Option(
        "--artifact", help="The artifact to draw, as format:precision (default: the first quantized one Model "
                           "Explorer reads, .tflite or .onnx).", show_default=False)] = None,
    port: Annotated[int, typer.Option(
        "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8080,
    no_open: Annotated[bool, typer.Option(
        "--no-open", help="Do not open a browser (CI, tests, a remote shell).")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the address and the overlays as one JSON line once serving.")] = False,
) -> None:
    """Show an artifact's graph in Model Explorer with per-op latency, SQNR and precision overlaid."""
    from edge_pipeline.cli.capture import native_output_to
    from edge_pipeline.cli.guard import err_console, out_console

    with tempfile.TemporaryDirectory(prefix="edgepipe-explore-") as scratch:
        with native_output_to(Path(scratch) / "native.log", [out_console, err_console]):   # torch's, TF's lines
            running = api.explore(report, artifact=artifact, port=port, no_open=True)
    exploration = running.exploration
    if as_json:
        sys.stdout.write(json.dumps(_summary(exploration, running.url)) + "\n")
        sys.stdout.flush()
    else:
        out_console.print(f"Model Explorer: {exploration.label} ({exploration.graph_nodes} nodes) at {running.url}",
                          soft_wrap=True)
        shown = ", ".join(f"{o.title} on {o.nodes} nodes" for o in exploration.overlays) or "none"
        out_console.print(f"Overlays: {shown}. Press Ctrl+C to stop.")
    if not no_open and not os.environ.get("CI"):
        webbrowser.open_new_tab(running.url)
    running.wait()


def _summary(exploration: Exploration, address: str) -> dict[str, object]:
    return {"url": address, "artifact": exploration.label, "path": str(exploration.artifact),
            "adapter": exploration.view.adapter, "graph_nodes": exploration.graph_nodes,
            "overlays": [{"title": o.title, "nodes": o.nodes} for o in exploration.overlays]}
