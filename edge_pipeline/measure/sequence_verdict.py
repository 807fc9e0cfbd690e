"""A stateful artifact judged step by step: each output's SQNR at every step of the validated sequences (pooled
over the sequences), and a refusal where the state carried from call to call departs from the source's.

Outputs come stacked one row per call (`sequences.step_sequences`), so step t of sequence s is row s*steps + t
whatever the output's layout.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from edge_pipeline.measure.sequences import SequencePlan, sequence_count
from edge_pipeline.measure.validate import COLLAPSE_SQNR_DB, sqnr_db
from edge_pipeline.precision import Thresholds
from edge_pipeline.report.model import Latency, SequenceValidation, Validation
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import JsonObject


def rows_at(stacked: np.ndarray, steps: int, chosen: Sequence[int]) -> np.ndarray:
    """The calls of every sequence at the chosen steps, flattened together (float64, for energies)."""
    sequences = sequence_count(len(stacked), steps)
    picks = [s * steps + t for s in range(sequences) for t in chosen]
    return stacked[picks].astype(np.float64).reshape(-1)


def step_sqnr(outputs: np.ndarray, reference: np.ndarray, steps: int) -> list[float | None]:
    """SQNR at each step, pooled over the sequences (None: identical to the source, or no signal there)."""
    return [sqnr_db(rows_at(reference, steps, [t]), rows_at(outputs, steps, [t])) for t in range(steps)]


def step_agreement(outputs: np.ndarray, reference: np.ndarray, steps: int) -> list[float] | None:
    """Top-1 agreement at each step, pooled over the sequences, for an output of class scores ([N, C] per call,
    C >= 2, float); None for any other output."""
    if reference.ndim != 3 or reference.shape[-1] < 2 or reference.dtype.kind != "f":
        return None
    sequences = sequence_count(len(reference), steps)
    row = []
    for t in range(steps):
        picks = [s * steps + t for s in range(sequences)]
        row.append(round(float((outputs[picks].argmax(-1) == reference[picks].argmax(-1)).mean()), 6))
    return row


def late_problem(name: str, outputs: np.ndarray, reference: np.ndarray, steps: int, floor: float | None,
                 first: float | None) -> str | None:
    """Why the last quarter of the steps refuses this output (None: it holds). `floor`: the SQNR it must keep
    (None: only a collapse refuses, for the output the task metric judges). An all-zero reference there with a
    non-zero artifact output is refused too: SQNR is undefined, the error is not."""
    late = max(1, steps // 4)
    chosen = list(range(steps - late, steps))
    ref, test = rows_at(reference, steps, chosen), rows_at(outputs, steps, chosen)
    span = f"steps {steps - late + 1}-{steps}" if late > 1 else f"step {steps}"
    error = float(np.sum((ref - test) ** 2))
    if not float(np.sum(ref ** 2)):
        return (f"output '{name}' is all zeros in the source over {span} of {steps}, and not in the artifact "
                f"(error energy {error:.3g}): the state carried from call to call diverges") if error else None
    tail = sqnr_db(ref, test)
    if tail is None or tail >= max(COLLAPSE_SQNR_DB, floor if floor is not None else COLLAPSE_SQNR_DB):
        return None
    at_first = f"{first:.1f} dB at step 1" if first is not None else "exact at step 1"
    required = floor if floor is not None else COLLAPSE_SQNR_DB
    return (f"output '{name}' SQNR falls to {tail:.1f} dB over {span} of {steps} ({at_first}), < {required:g} dB "
            f"required: the state carried from call to call diverges")


def judge_sequences(outputs: Tensors, reference: Tensors, plan: SequencePlan, min_sqnr_db: float,
                    labelled_output: str | None) -> tuple[JsonObject, list[str]]:
    """Per-step figures of every output and the refusals they give. The last quarter of the steps decides, pooled
    (one quiet step does not refuse a good artifact): a state that drifts, is ignored or is zeroed fails there even
    when the first calls match. The output the task metric reads is left to the metric unless it collapses."""
    states = {link.output for link in plan.links}
    test = outputs.as_dict()
    entries: list[JsonObject] = []
    problems: list[str] = []
    for name, ref in zip(reference.names, reference.arrays):
        row = step_sqnr(test[name], ref, plan.steps)
        known = [(i, v) for i, v in enumerate(row) if v is not None]
        worst = min(known, key=lambda item: item[1]) if known else None
        entry: JsonObject = {"name": name, "state": name in states, "step_sqnr_db": row, "first_sqnr_db": row[0],
                             "last_sqnr_db": row[-1], "worst_sqnr_db": worst[1] if worst else None,
                             "worst_step": worst[0] + 1 if worst else None,
                             "drift_db": round(row[0] - row[-1], 2) if row[0] is not None and row[-1] is not None
                             else None}
        agreement = None if name in states else step_agreement(test[name], ref, plan.steps)   # a state: no classes
        if agreement is not None:
            entry.update(step_agreement=agreement, worst_agreement=min(agreement))
        entries.append(entry)
        problem = late_problem(name, test[name], ref, plan.steps, None if name == labelled_output else min_sqnr_db,
                               row[0])
        if problem:
            problems.append(problem)
    found: JsonObject = {"steps": plan.steps, "sequences": sequence_count(len(reference), plan.steps),
                         "state": [str(link) for link in plan.links], "state_from": plan.state_from,
                         "initial_state": plan.initial_state, "outputs": entries}
    return found, problems


def sequence_verdict(validation: Validation, outputs: Tensors, reference: Tensors, plan: SequencePlan,
                     thresholds: Thresholds) -> Validation:
    """`validation` (every call compared) with the per-step figures, refused where a state diverges. `outputs`
    and `reference`: stacked one row per call."""
    decided_by_metric = validation.metric_drop_pts is not None and not thresholds.exact
    labelled = validation.metric_output if decided_by_metric else None
    found, problems = judge_sequences(outputs, reference, plan, thresholds.min_sqnr_db, labelled)
    message = "; ".join([m for m in (validation.message,) if m] + problems) or None
    order = (*validation.key_order, "sequence") if validation.key_order is not None else None
    part = replace(SequenceValidation.from_json(found, "validation.sequence"), key_order=None)
    return replace(validation, sequence=part, passed=bool(validation.passed) and not problems, message=message,
                   key_order=order)


def with_real_time_factor(validation: Validation | None, latency: Sequence[Latency], chunk_ms: float | None
                          ) -> Validation | None:
    """The sequence figures with the time one call takes (median on one thread) over the signal it consumes."""
    if validation is None or validation.sequence is None or chunk_ms is None:
        return validation
    one_thread = next((entry for entry in latency if entry.threads == 1), None)
    factor = round(one_thread.p50 / chunk_ms, 9) if one_thread is not None and one_thread.p50 is not None else None
    return replace(validation, sequence=replace(validation.sequence, chunk_duration_ms=chunk_ms,
                                                real_time_factor=factor))
