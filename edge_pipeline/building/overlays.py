"""Graph overlays: Model Explorer node-data files written beside each artifact whose graph it can draw.

Three per artifact, each keyed by the node ids of Model Explorer's adapter for the format (the runner plugin
names them): the time of each op from the op profile, what each op computes in (int8, float, a (de)quantizer),
and, for a quantized artifact built beside its float one, the SQNR of each op's output against the float
artifact's same tensor on the recorded evaluation calls. The files are Model Explorer's own node-data JSON, so a
user can also load them in a Model Explorer they run themselves; `edgepipe explore` serves them with the graph.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_pipeline import registry
from edge_pipeline.building.plan import Step
from edge_pipeline.building.recorded import Recording
from edge_pipeline.fsutil import write_text_atomic
from edge_pipeline.plugins import Runner
from edge_pipeline.records import ArtifactResult, Status
from edge_pipeline.report.model import GraphOverlays
from edge_pipeline.tensors import order_inputs
from edge_pipeline.types import JsonObject

FLOAT = "fp32"
# Model Explorer colours a node by where its value falls between the smallest (stop 0) and the largest (stop 1)
FAST_TO_SLOW: list[JsonObject] = [{"stop": 0, "bgColor": "#e8f5e9"}, {"stop": 0.5, "bgColor": "#fff59d"},
                                  {"stop": 1, "bgColor": "#ef5350"}]
WORST_TO_BEST: list[JsonObject] = [{"stop": 0, "bgColor": "#ef5350"}, {"stop": 0.5, "bgColor": "#fff59d"},
                                   {"stop": 1, "bgColor": "#a5d6a7"}]
PRECISION_COLORS = {"int8": "#a5d6a7", "uint8": "#a5d6a7", "int16": "#c5e1a5", "int8 weights": "#fff59d",
                    "convert": "#e0e0e0", "float16": "#ffcc80"}
FLOAT_COLOR = "#ef9a9a"      # a float op inside a quantized model stands out


@dataclass(frozen=True)
class Built:
    """One validated artifact in the staging folder, with what the runner plugin that ran it can draw."""

    step: Step
    result: ArtifactResult
    path: Path
    runner: Runner


def write_overlays(staging: Path, steps: list[Step], results: list[ArtifactResult],
                   recording: Recording | None) -> tuple[dict[int, GraphOverlays], list[str]]:
    """Overlays by artifact position, and one warning per artifact whose overlays could not be made."""
    built = {i: b for i, (step, result) in enumerate(zip(steps, results)) if (b := _drawable(staging, step, result))}
    found: dict[int, GraphOverlays] = {}
    warnings: list[str] = []
    for index, item in built.items():
        floats = [b for b in built.values() if b.step.output.format == item.step.output.format
                  and b.step.output.precision.name == FLOAT and b.step.runner == item.step.runner]
        try:
            found[index] = _write_one(item, floats[0] if floats else None, recording)
        except Exception as exc:    # a viewer aid never fails a validated build: it is reported missing instead
            warnings.append(f"no graph overlays for {item.step.output.label}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}")
    return found, warnings


def _drawable(staging: Path, step: Step, result: ArtifactResult) -> Built | None:
    if result.status != Status.OK or step.runner is None or result.measurement is None:
        return None
    runner = registry.create(Runner, step.runner)
    view = runner.graph_view
    if view is None or step.suffix not in view.suffixes:
        return None
    return Built(step, result, staging / step.filename, runner)


def _write_one(item: Built, floating: Built | None, recording: Recording | None) -> GraphOverlays:
    view = item.runner.graph_view
    assert view is not None and item.result.measurement is not None
    name = item.step.filename
    latency = item.result.measurement.node_latency_ms
    precisions = item.runner.node_precisions(item.path)
    errors: dict[str, float] = {}
    note = None
    if item.step.output.precision.name == FLOAT:
        pass
    elif floating is None:
        note = f"no per-op SQNR: the build made no {item.step.output.format}:{FLOAT} artifact to compare with"
    elif recording is None or recording.plan.links:
        note = "no per-op SQNR: a stateful model's ops are compared only through whole sequences"
    else:
        errors = item.runner.node_errors(item.path, floating.path, _calls(item, recording))
        note = None if errors else "no per-op SQNR: no op output could be paired with the float artifact's"
    files = {"latency_ms": _write(item.path, "latency-ms", "Latency (ms, this host)", latency, FAST_TO_SLOW),
             "sqnr_db": _write(item.path, "sqnr-db", f"SQNR vs {FLOAT} (dB)", errors, WORST_TO_BEST),
             "precision": _write_labels(item.path, precisions)}
    return GraphOverlays(adapter=view.adapter, note=note,
                         **{key: (f"{name}.{suffix}.json" if suffix else None) for key, suffix in files.items()})


def _calls(item: Built, recording: Recording) -> list[list]:
    """The recorded evaluation calls in the artifact's input order."""
    session = item.runner.open(item.path, 1, item.runner.variants[0])
    batch = recording.batch
    return [list(order_inputs(session.input_specs, recording.inputs[i * batch:(i + 1) * batch]).arrays)
            for i in range(recording.calls)]


def _write(artifact: Path, suffix: str, title: str, values: dict[str, float], gradient: list[JsonObject]) -> str | None:
    if not values:
        return None
    results = {node: {"value": float(f"{value:.4g}")} for node, value in sorted(values.items())}
    data = {"name": title, "results": results, "gradient": gradient}
    write_text_atomic(artifact.with_name(f"{artifact.name}.{suffix}.json"), json.dumps(data, indent=1) + "\n")
    return suffix


def _write_labels(artifact: Path, precisions: dict[str, str]) -> str | None:
    if not precisions:
        return None
    results = {node: {"value": kind, "bgColor": PRECISION_COLORS.get(kind, FLOAT_COLOR)}
               for node, kind in sorted(precisions.items())}
    data = {"name": "Computes in", "results": results, "showExpandedSummaryOnGroupNode": True,
            "showLabelCountColumnsInChildrenStatsTable": True}
    write_text_atomic(artifact.with_name(f"{artifact.name}.precision.json"), json.dumps(data, indent=1) + "\n")
    return "precision"
