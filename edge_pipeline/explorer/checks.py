"""`edgepipe explore`: one built artifact's graph in Model Explorer, with the build's overlays (per-op latency,
per-op SQNR against the float artifact, what each op computes in).

Everything is checked before a server starts: the report, the artifact (inside the build folder, the bytes the
report hashed), each overlay file (bounded, Model Explorer's node-data shape, every node id one the graph has),
and the graph itself, converted once by Model Explorer's own adapter for the format. The server then answers
for that one model only (see `server`).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from edge_pipeline import registry
from edge_pipeline.errors import ConfigError, InputError, MissingDependency
from edge_pipeline.paths import inside
from edge_pipeline.plugins import GraphView, Runner
from edge_pipeline.report.baseline import read_json_file
from edge_pipeline.report.model import ArtifactReport, Report
from edge_pipeline.types import JsonObject, JsonValue

if TYPE_CHECKING:
    from model_explorer.extension_manager import ExtensionManager

OVERLAYS = {"latency_ms": "Latency (ms)", "sqnr_db": "SQNR (dB)", "precision": "Computes in"}
EXPLORER = "ai-edge-model-explorer"


@dataclass(frozen=True)
class Overlay:
    """One node-data file checked against the graph: its title, its JSON text, how many of its nodes drew."""

    title: str
    content: str
    nodes: int


@dataclass(frozen=True)
class Exploration:
    """What the server shows: the artifact, Model Explorer's graph of it, and the overlays on it."""

    label: str
    artifact: Path
    view: GraphView
    graphs: JsonObject            # Model Explorer's conversion of the artifact (its adapter's response)
    overlays: tuple[Overlay, ...]
    graph_nodes: int

    def url_data(self) -> str:
        """The `data=` URL parameter that makes the web app load this model with its node data (served by
        index from /api/v1/load_node_data)."""
        sources = [f"node_data://{o.title}/{i}" for i, o in enumerate(self.overlays)]
        data = {"models": [{"url": str(self.artifact), "adapterId": self.view.adapter}],
                "nodeData": sources, "nodeDataTargets": ["" for _ in sources]}
        return quote(json.dumps(data))


def prepare(report: Report, folder: Path, label: str | None) -> Exploration:
    """The checked exploration of `label` of the build in `folder` (default: the first artifact with a per-op
    SQNR overlay, a quantized one, else the first Model Explorer reads)."""
    artifact = _chosen(report, label)
    overlays = artifact.graph_overlays
    assert overlays is not None and overlays.adapter is not None
    path = inside(folder, artifact.path, f"{artifact.label} path in the report")
    if not path.is_file():
        raise InputError(f"{artifact.label}: {path} is missing: rebuild, or pass the folder the report was built in")
    if artifact.sha256 and _sha256(path) != artifact.sha256:
        raise InputError(f"{artifact.label}: {path} is not the file the report describes (its sha256 differs)")
    view = _view(artifact, overlays.adapter)
    files = {title: inside(folder, getattr(overlays, key), f"{artifact.label} overlay {key}")
             for key, title in OVERLAYS.items() if getattr(overlays, key) is not None}
    graphs = convert(path, view)
    ids = graph_node_ids(graphs)
    found = [_overlay(file, title, ids) for title, file in files.items()]
    return Exploration(artifact.label, path, view, graphs, tuple(found), len(ids))


def convert(path: Path, view: GraphView) -> JsonObject:
    """The artifact's graph as Model Explorer's adapter converts it (the server hands this same response out)."""
    try:
        response = extension_manager().run_cmd({"cmdId": "convert", "extensionId": view.adapter, "modelPath": str(path),
                                    "settings": {}, "deleteAfterConversion": False})
    except Exception as exc:        # the adapter's own error, whatever it raises
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"Model Explorer's {view.adapter} adapter cannot read {path}: {first}") from None
    if not isinstance(response, dict) or not graph_node_ids(response):
        raise InputError(f"Model Explorer's {view.adapter} adapter found no graph in {path}")
    return response


def extension_manager() -> ExtensionManager:
    """Model Explorer's extension manager (one per process: it is a singleton) with every adapter a runner plugin
    declares loaded."""
    try:
        from model_explorer.extension_manager import ExtensionManager
    except ImportError:
        raise MissingDependency(EXPLORER, "edgepipe explore") from None
    runners, _ = registry.load_all(Runner)
    modules = sorted({view.extension for runner in runners if (view := runner.graph_view) and view.extension})
    manager = ExtensionManager(modules)
    if not manager.extensions:
        manager.load_extensions()
    return manager


def graph_node_ids(response: JsonValue) -> set[str]:
    """Every node id of every graph in an adapter's response (one collection or several)."""
    if not isinstance(response, dict):
        return set()
    collections = response.get("graphCollections")
    groups = [c.get("graphs") for c in collections if isinstance(c, dict)] if isinstance(collections, list) \
        else [response.get("graphs")]
    return {str(node["id"]) for graphs in groups if isinstance(graphs, list) for graph in graphs
            if isinstance(graph, dict) for node in graph.get("nodes") or () if isinstance(node, dict) and "id" in node}


def _chosen(report: Report, label: str | None) -> ArtifactReport:
    drawable = [a for a in report.artifacts if a.graph_overlays is not None and a.graph_overlays.adapter]
    if label is None:
        if not drawable:
            raise ConfigError(f"no artifact of this build has a graph Model Explorer can draw "
                              f"({', '.join(a.label for a in report.artifacts) or 'no artifacts'}): it reads "
                              f"{_readable()} (reports written before edgepipe made overlays have none)")
        return next((a for a in drawable if a.graph_overlays and a.graph_overlays.sqnr_db), drawable[0])
    matches = [a for a in report.artifacts if a.label == label]
    if not matches:
        known = ", ".join(a.label for a in report.artifacts) or "none"
        raise ConfigError(f"--artifact {label!r} is not in this report (artifacts: {known})")
    if matches[0].status != "ok":
        raise ConfigError(f"--artifact {label}: its status is {matches[0].status}; only validated artifacts are drawn")
    if matches[0] not in drawable:
        raise ConfigError(f"--artifact {label}: Model Explorer cannot draw a {matches[0].format} artifact; it reads "
                          f"{_readable()}")
    return matches[0]


def _readable() -> str:
    """The formats whose runners declare a Model Explorer view, with the reason the others have none."""
    runners, _ = registry.load_all(Runner)
    suffixes = sorted({s for runner in runners if (view := runner.graph_view) for s in view.suffixes})
    return (f"{', '.join(suffixes)} files (an ExecuTorch .pte has no Model Explorer adapter: its PyTorch adapter "
            f"reads an ExportedProgram in memory, not a program file; TF.js and .ort files have none either)")


def _view(artifact: ArtifactReport, adapter: str) -> GraphView:
    """The runner plugin's view whose adapter the report names (the report says which; the plugin says how)."""
    runner = registry.plugin(Runner, artifact.runner) if artifact.runner else None
    view = runner.graph_view if runner is not None else None
    if view is None or view.adapter != adapter:
        raise ConfigError(f"{artifact.label}: the report's graph adapter {adapter!r} is not its runner's "
                          f"({view.adapter if view else 'none'})")
    return view


def _overlay(path: Path, title: str, ids: set[str]) -> Overlay:
    """A node-data file, read strictly: results keyed by node ids the graph has, each value a finite number or a
    label. A file for another graph (none of its ids drawn) is refused rather than shown empty."""
    data = read_json_file(path, f"overlay {title}")
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise InputError(f"overlay {path} is not Model Explorer node data (no 'results' object)")
    for node, result in results.items():
        value = result.get("value") if isinstance(result, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or \
                (isinstance(value, float) and not math.isfinite(value)):
            raise InputError(f"overlay {path}: node {node!r} has no value a graph can show")
    drawn = len(set(results) & ids)
    if not drawn:
        raise InputError(f"overlay {path} names none of the graph's nodes (is it another model's?)")
    return Overlay(title, json.dumps(data), drawn)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
