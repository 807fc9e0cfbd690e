"""Stateful models judged over whole sequences: each output's state fed back as the next call's input, in the
source and in the artifact alike, and every step compared, so a state that drifts, is ignored or is zeroed
fails where a call-by-call check would pass.

The evaluation samples are read as consecutive chunks: sequence k is batches k*steps .. (k+1)*steps - 1, each
state input starts at zeros and then takes the state output of the call before; whatever the data held for a
state input is not used.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.precision import Thresholds
from edge_pipeline.report.model import Latency, SequenceValidation, Validation
from edge_pipeline.tensors import BatchDim, Tensors, TensorSpec, as_array
from edge_pipeline.types import JsonObject

Call = Callable[[Tensors], Sequence[tuple[str, object]]]
AFFIXES = re.compile(r"^(next_|new_|prev_|past_|present_)|(_out|_in|_next|_new|_prev|out|in|n|0)$")


@dataclass(frozen=True)
class StateLink:
    """One state: the output a call returns and the input of the next call it feeds."""

    output: str
    input: str

    def __str__(self) -> str:
        return f"{self.output} -> {self.input}"


@dataclass(frozen=True)
class SequencePlan:
    """How a stateful model's reference was produced, so every artifact is stepped the same way."""

    links: tuple[StateLink, ...]
    steps: int
    state_from: str          # "config": declared in [state]; "names": detected from names and shapes

    def to_json(self) -> str:
        return json.dumps({"links": [[link.output, link.input] for link in self.links], "steps": self.steps,
                           "state_from": self.state_from})

    @classmethod
    def from_json(cls, text: str) -> "SequencePlan":
        data = json.loads(text)
        return cls(tuple(StateLink(str(o), str(i)) for o, i in data["links"]), int(data["steps"]),
                   str(data["state_from"]))


def plan_for(declared: Mapping[str, object] | None, steps: int, inputs: Sequence[TensorSpec],
             outputs: Sequence[TensorSpec]) -> SequencePlan | None:
    """The sequence plan of a model whose outputs feed its inputs; None for a stateless model."""
    links = resolve_state(declared, inputs, outputs)
    return SequencePlan(links, steps, "config" if declared is not None else "names") if links else None


def resolve_state(declared: Mapping[str, object] | None, inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> tuple[StateLink, ...]:
    """The declared `[state]` map (output = input), checked by name, shape and dtype; without one, the pairs
    whose names match once in/out affixes are dropped (`state` / `stateN`, `h0` / `hn`, `cache_in` /
    `cache_out`) and whose shapes and dtypes are equal. An empty table declares that there is no state."""
    by_input = {s.name: s for s in inputs}
    by_output = {s.name: s for s in outputs}
    if declared is not None:
        links = []
        for output, target in declared.items():
            if output not in by_output:
                raise InputError(f"[state] names output '{output}', which the model does not have (outputs: "
                                 f"{', '.join(by_output)})")
            if not isinstance(target, str) or target not in by_input:
                raise InputError(f"[state] {output} = {target!r}: the model has no input of that name (inputs: "
                                 f"{', '.join(by_input)})")
            _check_pair(by_output[output], by_input[target])
            links.append(StateLink(output, target))
        if len({link.input for link in links}) != len(links):
            raise InputError("[state] feeds one input from two outputs")
        return tuple(links)
    found = []
    for output in outputs:
        matches = [i for i in inputs if i.name != output.name and _stem(i.name) == _stem(output.name)
                   and _same_kind(output, i)]
        if len(matches) == 1:
            found.append(StateLink(output.name, matches[0].name))
    return tuple(found) if len({link.input for link in found}) == len(found) else ()


def _stem(name: str) -> str:
    return AFFIXES.sub("", name.lower()) or name.lower()


def _same_kind(output: TensorSpec, target: TensorSpec) -> bool:
    return output.dtype == target.dtype and tuple(output.shape) == tuple(target.shape)


def _check_pair(output: TensorSpec, target: TensorSpec) -> None:
    if not _same_kind(output, target):
        raise InputError(f"[state] {output.name} = {target.name!r}: the output is {list(output.shape)} "
                         f"{output.dtype}, the input takes {list(target.shape)} {target.dtype}")


def sequence_count(samples: int, batch: int, steps: int) -> int:
    return samples // (batch * steps)


def step_sequences(call: Call, inputs: Tensors, links: Sequence[StateLink], steps: int, batch: int) -> Tensors:
    """Every sequence stepped through `call` from zero state; outputs concatenated in (sequence, step) order,
    each state output along its input's batch dimension."""
    sequences = sequence_count(len(inputs), batch, steps)
    if sequences < 1:
        raise InputError(f"a stateful model is validated over sequences of {steps} calls: give at least "
                         f"{steps * batch} evaluation samples, or a smaller sequence-steps")
    names: tuple[str, ...] = ()
    chunks: list[list[np.ndarray]] = []
    for _, values in stepped(call, inputs[:sequences * steps * batch], links, steps, batch):
        if not names:
            names = tuple(values)
            chunks = [[] for _ in names]
        for i, name in enumerate(names):
            chunks[i].append(values[name])
    out_dims = _output_dims(names, links, dict(zip(inputs.names, inputs.dims)))
    return Tensors(names, tuple(_joined(c, d) for c, d in zip(chunks, out_dims)), out_dims)


def stepped(call: Call, inputs: Tensors, links: Sequence[StateLink], steps: int, batch: int
            ) -> Iterator[tuple[Tensors, dict[str, np.ndarray]]]:
    """Each whole batch of `inputs` in order, its state inputs replaced by the state the call before returned
    (zeros at the start of every sequence of `steps` calls): (the inputs fed, the outputs by name)."""
    feeds = {link.input for link in links}
    state: dict[str, np.ndarray] = {}
    for index, part in enumerate(inputs.batches(batch)):
        if index % steps == 0:
            state = {}
        fed = Tensors(part.names, tuple(state.get(n, np.zeros_like(a)) if n in feeds else a
                                        for n, a in zip(part.names, part.arrays)), part.batch_dims)
        values = {n: as_array(v, f"output '{n}'") for n, v in call(fed)}
        yield fed, values
        state = {link.input: _fed_back(values, link, fed.as_dict()) for link in links}


def carried_calibration(call: Call, calibration: Tensors, links: Sequence[StateLink], steps: int, batch: int
                        ) -> Iterator[Tensors]:
    """The calibration batches with the states the float source carries into each call, read as consecutive
    chunks like the evaluation data: a quantizer that saw only the zeros a user's data holds for a state would
    give it a zero range, and the int8 model would forget everything between calls."""
    for fed, _ in stepped(call, calibration, links, steps, batch):
        yield fed


def _fed_back(values: Mapping[str, np.ndarray], link: StateLink, previous: Mapping[str, np.ndarray]) -> np.ndarray:
    if link.output not in values:
        raise InputError(f"state output '{link.output}' is not among the outputs of a call "
                         f"({', '.join(values)})")
    value, before = values[link.output], previous[link.input]
    if value.shape != before.shape:
        raise InputError(f"state output '{link.output}' has shape {list(value.shape)}, but input "
                         f"'{link.input}' takes {list(before.shape)}")
    return value.astype(before.dtype, copy=False)


def _output_dims(names: Sequence[str], links: Sequence[StateLink], dims: Mapping[str, BatchDim]
                 ) -> tuple[BatchDim, ...]:
    fed = {link.output: dims.get(link.input, 0) for link in links}
    return tuple(fed.get(name, 0) for name in names)


def _joined(chunks: list[np.ndarray], dim: BatchDim) -> np.ndarray:
    if chunks[0].ndim == 0 or dim is None:
        return np.stack(chunks)
    return np.concatenate(chunks, axis=dim)


def per_step(outputs: Tensors, reference: Tensors, steps: int, batch: int,
             measure: Callable[[np.ndarray, np.ndarray], float | None]) -> dict[str, list[float | None]]:
    """`measure(reference, artifact)` at each step, pooled over every sequence, output by output."""
    sequences = sequence_count(len(reference), batch, steps)
    figures: dict[str, list[float | None]] = {}
    for index, name in enumerate(reference.names):
        dim = reference.dim(index)
        row = []
        for step in range(steps):
            picks = [(s * steps + step) * batch for s in range(sequences)]
            ref = np.concatenate([_batch_at(reference.arrays[index], dim, p, batch) for p in picks])
            test = np.concatenate([_batch_at(outputs.arrays[index], dim, p, batch) for p in picks])
            row.append(measure(ref, test))
        figures[name] = row
    return figures


def _batch_at(array: np.ndarray, dim: BatchDim, start: int, batch: int) -> np.ndarray:
    if array.ndim == 0 or dim is None:
        return array.reshape(1, -1)
    return np.moveaxis(array, dim, 0)[start:start + batch].reshape(batch, -1)


def judge_sequences(outputs: Tensors, reference: Tensors, links: Sequence[StateLink], steps: int, batch: int,
                    min_sqnr_db: float, labelled_output: str | None, state_from: str) -> tuple[JsonObject, list[str]]:
    """Per-step SQNR of every output and the refusals they give. The last quarter of the steps decides (pooled,
    so one quiet step does not refuse a good artifact): a state that drifts, is ignored or zeroed fails there
    even when the first calls match. The output the task metric reads (labels) is left to the metric unless it
    collapses."""
    from edge_pipeline.measure.validate import COLLAPSE_SQNR_DB, sqnr_db

    figures = per_step(outputs, reference, steps, batch, sqnr_db)
    late = max(1, steps // 4)
    states = {link.output for link in links}
    entries: list[JsonObject] = []
    problems: list[str] = []
    for name, row in figures.items():
        known = [(i, v) for i, v in enumerate(row) if v is not None]
        worst = min(known, key=lambda item: item[1]) if known else None
        tail = _pooled(outputs, reference, name, steps, batch, late)
        entry: JsonObject = {"name": name, "state": name in states, "step_sqnr_db": list(row),
                             "first_sqnr_db": row[0], "last_sqnr_db": row[-1],
                             "worst_sqnr_db": worst[1] if worst else None,
                             "worst_step": worst[0] + 1 if worst else None,
                             "drift_db": round(row[0] - row[-1], 2) if row[0] is not None and row[-1] is not None
                             else None}
        entries.append(entry)
        span = f"steps {steps - late + 1}-{steps}" if late > 1 else f"step {steps}"
        if tail is None:       # identical to the source over those steps
            continue
        first = f" ({row[0]:.1f} dB at step 1)" if row[0] is not None else " (exact at step 1)"
        if tail < COLLAPSE_SQNR_DB or (name != labelled_output and tail < min_sqnr_db):
            problems.append(f"output '{name}' SQNR falls to {tail:.1f} dB over {span} of {steps}{first}, "
                            f"< {min_sqnr_db:g} dB required: the state carried from call to call diverges")
    report: JsonObject = {"steps": steps, "sequences": sequence_count(len(reference), batch, steps),
                          "state": [str(link) for link in links], "state_from": state_from,
                          "initial_state": "zeros", "outputs": entries}
    return report, problems


def _pooled(outputs: Tensors, reference: Tensors, name: str, steps: int, batch: int, last: int) -> float | None:
    """SQNR over the last `last` steps of every sequence together."""
    from edge_pipeline.measure.validate import sqnr_db

    index = reference.names.index(name)
    dim = reference.dim(index)
    sequences = sequence_count(len(reference), batch, steps)
    picks = [(s * steps + t) * batch for s in range(sequences) for t in range(steps - last, steps)]
    ref = np.concatenate([_batch_at(reference.arrays[index], dim, p, batch) for p in picks])
    test = np.concatenate([_batch_at(outputs.arrays[index], dim, p, batch) for p in picks])
    return sqnr_db(ref, test)


def sequence_verdict(validation: Validation, outputs: Tensors, reference: Tensors, plan: SequencePlan, batch: int,
                     thresholds: Thresholds) -> Validation:
    """`validation` (the pooled comparison) with the per-step figures, refused where a state diverges."""
    decided_by_metric = validation.metric_drop_pts is not None and not thresholds.exact
    labelled = validation.metric_output if decided_by_metric else None
    found, problems = judge_sequences(outputs, reference, plan.links, plan.steps, batch, thresholds.min_sqnr_db,
                                      labelled, plan.state_from)
    message = "; ".join([m for m in (validation.message,) if m] + problems) or None
    order = (*validation.key_order, "sequence") if validation.key_order is not None else None
    part = replace(SequenceValidation.from_json(found, "validation.sequence"), key_order=None)
    return replace(validation, sequence=part, passed=bool(validation.passed) and not problems, message=message,
                   key_order=order)


def with_real_time_factor(validation: Validation | None, latency: Sequence[Latency], chunk_ms: float | None
                          ) -> Validation | None:
    """The sequence figures with the time one call takes (median, 1 thread) over the signal it consumes."""
    if validation is None or validation.sequence is None or chunk_ms is None:
        return validation
    p50 = latency[0].p50 if latency else None
    factor = round(p50 / chunk_ms, 6) if p50 is not None else None
    return replace(validation, sequence=replace(validation.sequence, chunk_duration_ms=chunk_ms,
                                                real_time_factor=factor))
