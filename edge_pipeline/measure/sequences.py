"""Stateful models judged over whole sequences: each output's state fed back as the next call's input, in the
source and in the artifact alike, and every step compared, so a state that drifts, is ignored or is zeroed
fails where a call-by-call check would pass.

The evaluation samples are read as consecutive chunks: sequence k is batches k*steps .. (k+1)*steps - 1, each
state input starts at zeros (or, with `initial-state = "data"`, at what the data holds for the sequence's first
call) and then takes the state output of the call before; what the data holds for later calls is not used.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.tensors import BatchDim, Tensors, TensorSpec, as_array

Call = Callable[[Tensors], Sequence[tuple[str, object]]]
PREFIXES = ("next_", "new_", "prev_", "past_", "present_")
SUFFIXES = ("_out", "_in", "_next", "_new", "_prev", "_0", "_n")
SHORT_STATE = re.compile(r"([a-z]{1,2})[0n]")      # torch's h0 / hn, c0 / cn
CAPITAL_N = re.compile(r"(.*[a-z])N")              # silero's state / stateN


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
    initial_state: str = "zeros"   # "zeros", or "data": a sequence's first call takes the state the data holds

    def to_json(self) -> str:
        return json.dumps({"links": [[link.output, link.input] for link in self.links], "steps": self.steps,
                           "state_from": self.state_from, "initial_state": self.initial_state})

    @classmethod
    def from_json(cls, text: str) -> "SequencePlan":
        data = json.loads(text)
        return cls(tuple(StateLink(str(o), str(i)) for o, i in data["links"]), int(data["steps"]),
                   str(data["state_from"]), str(data.get("initial_state", "zeros")))


def plan_for(declared: Mapping[str, object] | None, steps: int, inputs: Sequence[TensorSpec],
             outputs: Sequence[TensorSpec], initial_state: str = "zeros") -> SequencePlan | None:
    """The sequence plan of a model whose outputs feed its inputs; None for a stateless model."""
    links = resolve_state(declared, inputs, outputs)
    return SequencePlan(links, steps, "config" if declared is not None else "names", initial_state) if links \
        else None


def resolve_state(declared: Mapping[str, object] | None, inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec]) -> tuple[StateLink, ...]:
    """The declared `[state]` map (output = input), checked by name, shape and dtype; without one, the pairs
    whose names match once in/out marks are dropped (`state` / `stateN`, `h0` / `hn`, `cache_in` /
    `cache_out`, `next_h` / `h`) and whose shapes and dtypes are equal, unless that would feed back every input.
    An empty table declares that there is no state."""
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
    if len({link.input for link in found}) != len(found) or len(found) == len(inputs):
        return ()        # every input fed back: a stateless model whose output is shaped like its input
    return tuple(found)


def _stem(name: str) -> str:
    """A name without its in/out marks: an affix set off by `_`, or the exact short forms `h0`/`hn`, `stateN`."""
    for prefix in PREFIXES:
        if name.lower().startswith(prefix) and len(name) > len(prefix):
            return _stem(name[len(prefix):])
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)].lower()
    for form in (SHORT_STATE, CAPITAL_N):
        match = form.fullmatch(name)
        if match:
            return match.group(1).lower()
    return name.lower()


def _same_kind(output: TensorSpec, target: TensorSpec) -> bool:
    return output.dtype == target.dtype and tuple(output.shape) == tuple(target.shape)


def _check_pair(output: TensorSpec, target: TensorSpec) -> None:
    if not _same_kind(output, target):
        raise InputError(f"[state] {output.name} = {target.name!r}: the output is {list(output.shape)} "
                         f"{output.dtype}, the input takes {list(target.shape)} {target.dtype}")


def sequence_count(calls: int, steps: int) -> int:
    return calls // steps


def step_sequences(call: Call, inputs: Tensors, plan: SequencePlan, batch: int) -> Tensors:
    """Every sequence stepped through `call` from its initial state: each output stacked one row per call, in
    (sequence, step) order (`join_calls` lays them out like the data for the metric)."""
    steps = plan.steps
    sequences = sequence_count(len(inputs) // batch, steps)
    if sequences < 1:
        raise InputError(f"a stateful model is validated over sequences of {steps} calls: give at least "
                         f"{steps * batch} evaluation samples, or a smaller sequence-steps (or state = {{}} if the "
                         f"model carries no state)")
    names: tuple[str, ...] = ()
    rows: list[list[np.ndarray]] = []
    for _, values in stepped(call, inputs[:sequences * steps * batch], plan, batch):
        if not names:
            names = tuple(values)
            rows = [[] for _ in names]
        for i, name in enumerate(names):
            rows[i].append(values[name])
    return Tensors(names, tuple(np.stack(r) for r in rows))


def join_calls(calls: Tensors, links: Sequence[StateLink], input_dims: Mapping[str, BatchDim]) -> Tensors:
    """Outputs stacked per call, joined along each one's batch dimension (a state's is its input's; a scalar or
    unbatched output keeps one row per call), as a call-by-call run would have given them."""
    fed = {link.output: input_dims.get(link.input, 0) for link in links}
    arrays, dims = [], []
    for name, stacked in zip(calls.names, calls.arrays):
        dim = fed.get(name, 0)
        if dim is None or stacked.ndim == 1:
            arrays.append(stacked)
            dims.append(0)
        else:
            arrays.append(np.concatenate(list(stacked), axis=dim))
            dims.append(dim)
    return Tensors(calls.names, tuple(arrays), tuple(dims))


def stepped(call: Call, inputs: Tensors, plan: SequencePlan, batch: int
            ) -> Iterator[tuple[Tensors, dict[str, np.ndarray]]]:
    """Each whole batch of `inputs` in order, its state inputs replaced by the state the call before returned
    (the initial state at the start of every sequence of `plan.steps` calls): (the inputs fed, the outputs by
    name)."""
    links = plan.links
    feeds = {link.input for link in links}
    state: dict[str, np.ndarray] = {}
    for index, part in enumerate(inputs.batches(batch)):
        if index % plan.steps == 0:
            state = part.as_dict() if plan.initial_state == "data" else {}
        fed = Tensors(part.names, tuple(state.get(n, np.zeros_like(a)) if n in feeds else a
                                        for n, a in zip(part.names, part.arrays)), part.batch_dims)
        values = {n: as_array(v, f"output '{n}'") for n, v in call(fed)}
        yield fed, values
        state = {link.input: _fed_back(values, link, fed.as_dict()) for link in links}


def carried_calibration(call: Call, calibration: Tensors, plan: SequencePlan, batch: int) -> Iterator[Tensors]:
    """The calibration batches with the states the float source carries into each call, read as consecutive
    chunks like the evaluation data: a quantizer that saw only the zeros a user's data holds for a state would
    give it a zero range, and the int8 model would forget everything between calls."""
    if len(calibration) < batch:
        raise InputError(f"calibration holds {len(calibration)} sample(s), less than one call of {batch}: a "
                         f"stateful model is calibrated on whole calls (raise calibration-samples)")
    for fed, _ in stepped(call, calibration, plan, batch):
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
