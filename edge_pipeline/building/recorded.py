"""recorded.npz: evaluation calls a board app replays, and what each artifact answered to them on this host.

A build keeps the first calls of its evaluation data beside the report: a stateful model's first sequence
(up to `sequence-steps` calls), any other model's first few calls, every input by name. A bundle whose app
replays them (the Linux board app) steps each artifact through those calls here, in its own runtime and with its
state fed back as validation did, and ships the inputs and those outputs one row per call; on the board the same
calls must give the same outputs. Any model fits: named inputs of any dtype, scalars, several outputs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pipeline.datafiles import load_arrays, load_bundle, load_outputs, load_plan, save_arrays
from edge_pipeline.measure.sequences import SequencePlan, stepped
from edge_pipeline.plugins import Session
from edge_pipeline.tensors import Tensors, align_outputs, order_inputs
from edge_pipeline.types import JsonObject

RECORDED = "recorded.npz"
STREAM = "stream.json"
STATELESS_CALLS = 8
MAX_BYTES = 16 << 20     # inputs kept for replay: a photo model keeps fewer calls, never megabytes of JSON


@dataclass(frozen=True)
class Recording:
    """Calls to replay: `inputs` laid out like the evaluation data (each tensor along its own batch dimension),
    `batch` samples per call; `plan` says which outputs feed which inputs and how many calls make a sequence
    (no links for a stateless model); `first_outputs`: the source's outputs of the first call (their names)."""

    inputs: Tensors
    batch: int
    plan: SequencePlan
    first_outputs: Tensors

    @property
    def calls(self) -> int:
        return len(self.inputs) // self.batch


def record(source_dir: Path, dest: Path) -> None:
    """Writes `dest` from the source stage's stored data and reference outputs."""
    data = load_bundle(source_dir / "data")
    reference = source_dir / "reference.npz"
    plan_text, stored = load_plan(reference), load_outputs(reference)
    stateful = SequencePlan.from_json(plan_text) if plan_text else None
    batch = len(data.example)
    per_call = max(1, sum(a.nbytes for a in data.example.arrays))
    wanted = stateful.steps if stateful else STATELESS_CALLS
    calls = max(1, min(wanted, MAX_BYTES // per_call, len(data.eval_inputs) // batch))
    first = Tensors(stored.names, tuple(a[0] for a in stored.arrays)) if stateful else stored[:batch]
    inputs = data.eval_inputs[:calls * batch]
    plan = stateful or SequencePlan((), calls, "none")     # stateless: every call starts afresh
    arrays = {f"input.{i}": np.ascontiguousarray(a) for i, a in enumerate(inputs.arrays)}
    arrays |= {f"first.{i}": np.asarray(a) for i, a in enumerate(first.arrays)}
    arrays |= {"input.names": np.array(inputs.names, dtype=str), "first.names": np.array(first.names, dtype=str),
               "input.dims": np.array([-1 if d is None else d for d in inputs.dims], dtype=np.int64),
               "batch": np.array(batch), "plan": np.array(plan.to_json(), dtype=str)}
    save_arrays(dest, **arrays)


def load_recording(path: Path) -> Recording | None:
    """The build's recorded calls (None: a build from before they were recorded)."""
    if not path.is_file():
        return None
    arrays = load_arrays(path)
    names = [str(n) for n in arrays["input.names"]]
    dims = tuple(None if d < 0 else int(d) for d in arrays["input.dims"])
    first_names = [str(n) for n in arrays["first.names"]]
    inputs = Tensors(tuple(names), tuple(arrays[f"input.{i}"] for i in range(len(names))), dims)
    first = Tensors(tuple(first_names), tuple(arrays[f"first.{i}"] for i in range(len(first_names))))
    return Recording(inputs, int(arrays["batch"]), SequencePlan.from_json(str(arrays["plan"])), first)


@dataclass(frozen=True)
class Replay:
    """One artifact stepped through the recorded calls: its outputs one row per call under the source's names,
    and how a board feeds it: `inputs`, the source's input names in the order the runtime takes them;
    `outputs`, the source's output names at each position the runtime returns (None: not compared)."""

    outputs: Tensors
    inputs: tuple[str, ...]
    positions: tuple[str | None, ...]


def replay(recording: Recording, session: Session) -> Replay:
    """The artifact stepped through the recorded calls as validation stepped it."""
    names = recording.inputs.names
    fed = order_inputs(session.input_specs, recording.inputs[:recording.batch])
    order = tuple(fed.names) if set(fed.names) == set(names) else tuple(names)
    positions: list[str | None] = []

    def call(batch: Tensors) -> list[tuple[str, object]]:
        raw = [np.asarray(r) for r in session.run(list(order_inputs(session.input_specs, batch).arrays))]
        named = align_outputs(raw, session.output_names, recording.first_outputs)
        if not positions:      # which raw output became which named one (align_outputs keeps the objects)
            by_id = {id(array): name for name, array in zip(named.names, named.arrays)}
            positions.extend(by_id.get(id(r)) for r in raw)
        return list(zip(named.names, named.arrays))

    rows: dict[str, list[np.ndarray]] = {}
    for _, values in stepped(call, recording.inputs, recording.plan, recording.batch):
        for name, value in values.items():
            rows.setdefault(name, []).append(value)
    return Replay(Tensors(tuple(rows), tuple(np.stack(r) for r in rows.values())), order, tuple(positions))


def write_replays(folder: Path, recording: Recording, replays: dict[str, Replay]) -> JsonObject:
    """The board app's files: `recorded.npz` (each input one row per call under `in/`, each artifact's outputs
    under `out/<label>/`) and `stream.json` (per artifact, its input order and output positions; the state)."""
    arrays = {f"in/{name}": np.stack([part.arrays[i] for part in recording.inputs.batches(recording.batch)])
              for i, name in enumerate(recording.inputs.names)}
    models: JsonObject = {}
    for label, done in replays.items():
        arrays |= {f"out/{label}/{name}": value for name, value in zip(done.outputs.names, done.outputs.arrays)}
        models[label] = {"inputs": list(done.inputs), "outputs": list(done.positions)}
    save_arrays(folder / RECORDED, **arrays)
    plan = recording.plan
    stream = {"calls": recording.calls, "sequence_calls": plan.steps,
              "state": [[link.output, link.input] for link in plan.links], "initial_state": plan.initial_state,
              "models": models}
    (folder / STREAM).write_text(json.dumps(stream, indent=2) + "\n")
    return {"recorded_calls": recording.calls, "recorded_state": [str(link) for link in plan.links],
            "recorded_bytes": int(sum(a.nbytes for a in arrays.values()))}
