"""Validation of an artifact against its float source, output by output, judged the way its task is judged.

Every output gets signal-normalised error (SQNR in dB, cosine similarity) and max |diff|; classification-shaped
outputs (2-D float [N, C], C >= 2, or the output the metric reads) also get top-1 agreement (top-5 when
C >= 10), with a 95% Wilson interval. Agreement decides for the model's class output only (`metric-output`,
else the first classification-shaped output): a [N, 4] box head is judged by its SQNR. The decision:
- always refused: a shape mismatch, NaN/Inf, a collapsed output (SQNR < 3 dB), or agreement near chance;
- float artifacts (fp32, fp16) are conversions that should be exact: SQNR and agreement thresholds always apply;
- quantized artifacts with labels: the task metric's drop decides (the target's max-accuracy-drop, else the
  precision's default); outputs the metric does not read are judged by SQNR;
- quantized artifacts without labels: SQNR per output and agreement per classification output.
Nobody gates int8 on max |diff| / max |output|: a classifier whose logits span hundreds has large absolute
errors in logits no decision reads, so max |diff| is reported but never decides.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace

import numpy as np

from edge_pipeline.precision import Precision, Thresholds
from edge_pipeline.report.model import Validation
from edge_pipeline.report.strict import ReportFieldError
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import FEATURE_EXTRACTION, JsonObject

COLLAPSE_SQNR_DB = 3.0        # below this an output is mostly noise, whatever the precision
SMALL_EVAL_SET = 200          # fewer evaluation samples: a warning with the interval


def thresholds_for(precision: Precision, overrides: Mapping[str, Mapping[str, float]] | None = None,
                   accuracy_budget: float | None = None) -> Thresholds:
    """A precision's thresholds: its Precision's defaults, then `[validation.<precision>]` overrides, then the
    target's accuracy budget."""
    chosen = replace(precision.thresholds, **(overrides or {}).get(precision.name, {}))
    if accuracy_budget is not None:
        chosen = replace(chosen, max_accuracy_drop=float(accuracy_budget), accuracy_budget_from="target budget")
    return chosen


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float | None:
    """10 log10(signal energy / error energy); None when it is undefined: identical outputs (no error, see
    `max_abs_diff` 0) or an all-zero reference (no signal to normalise by). JSON has no infinity."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - test.astype(np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if signal == 0.0 or noise == 0.0:
        return None
    return round(10 * math.log10(signal / noise), 2)


def cosine(reference: np.ndarray, test: np.ndarray) -> float | None:
    a, b = reference.astype(np.float64).ravel(), test.astype(np.float64).ravel()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return None if norm == 0.0 else round(float(a @ b) / norm, 6)


def wilson(successes: float, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of a proportion: honest on small evaluation sets."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def is_classification(array: np.ndarray) -> bool:
    return array.ndim == 2 and array.shape[1] >= 2 and array.dtype.kind == "f"


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None or not is_classification(outputs) or len(labels) != len(outputs):
        return None
    return float((outputs.argmax(axis=1) == labels).mean())


def top5_accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None or not is_classification(outputs) or len(labels) != len(outputs):
        return None
    top = np.argsort(-outputs, axis=1)[:, :5]
    return float((top == labels[:, None]).any(axis=1).mean())


RETRIEVAL_TIE = 0.01   # cosine: a neighbour this close to the source's best is, for the source, a tie


def retrieval_agreement(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Embeddings: the share of samples whose nearest neighbour (cosine, itself excluded) is the source's, up to
    the source's own near-ties. `labels`: the source's cosine similarities (`similarities`), N x N."""
    if labels is None or outputs.ndim != 2 or labels.shape != (len(outputs), len(outputs)) or len(outputs) < 2:
        return None
    picks = similarities(outputs).argmax(axis=1)
    rows = np.arange(len(outputs))
    return float((labels[rows, picks] >= labels.max(axis=1) - RETRIEVAL_TIE).mean())


def similarities(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair; a sample's own is -2 (never its own neighbour)."""
    unit = embeddings.astype(np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -2.0)
    return similarity


Metric = Callable[[np.ndarray, np.ndarray | None], float | None]
BUILTIN_METRICS: dict[str, Metric] = {"top1": top1_accuracy, "top5": top5_accuracy, "retrieval": retrieval_agreement}
CLASS_METRICS = ("top1", "top5")   # read a class output (argmax)


def metric_output(outputs: Tensors, wanted: str | None) -> str:
    """The output a metric reads: the configured one, else the first classification output, else the first."""
    if wanted is not None:
        return wanted
    return next((n for n, a in zip(outputs.names, outputs.arrays) if is_classification(a)), outputs.names[0])


def compare_output(name: str, test: np.ndarray, reference: np.ndarray,
                   force_classification: bool = False, classes: bool = True) -> JsonObject:
    """Fidelity figures of one output (no decision), as the report's `validation.outputs[]` entry."""
    entry: JsonObject = {"name": name, "shape": list(reference.shape[1:]), "dtype": reference.dtype.name}
    if test.shape != reference.shape:
        return {**entry, "shape_mismatch": f"output '{name}' has shape {list(test.shape)}, the source's is "
                                           f"{list(reference.shape)}"}
    finite = bool(np.all(np.isfinite(test)))
    diff = np.abs(test.astype(np.float64) - reference.astype(np.float64)) if finite else None
    entry.update(finite=finite, sqnr_db=sqnr_db(reference, test) if finite else None,
                 cosine=cosine(reference, test) if finite else None,
                 max_abs_diff=float(diff.max()) if diff is not None and diff.size else (0.0 if finite else None))
    if force_classification or (classes and is_classification(reference)):
        n = len(reference)
        agree = test.argmax(axis=-1) == reference.argmax(axis=-1)
        entry.update(classification=True, classes=int(reference.shape[-1]),
                     agreement=float(agree.mean()) if n else None,
                     agreement_ci95=wilson(float(agree.reshape(n, -1).all(axis=1).sum()), n))
        if reference.shape[-1] >= 10:
            top5 = np.argsort(-test.reshape(-1, reference.shape[-1]), axis=1)[:, :5]
            entry["top5_agreement"] = float((top5 == reference.reshape(-1, reference.shape[-1]).argmax(axis=1)[:, None])
                                            .any(axis=1).mean())
    else:
        entry["classification"] = False
    return entry


def judge_output(entry: JsonObject, t: Thresholds, labelled: bool, judge_agreement: bool = True) -> list[str]:
    """Why this output is refused (empty: accepted). Agreement decides only for the model's class output."""
    name = entry["name"]
    if "shape_mismatch" in entry:
        return [str(entry["shape_mismatch"])]
    if not entry["finite"]:
        return [f"output '{name}' contains NaN or infinity"]
    problems = []
    sqnr = entry["sqnr_db"]
    if isinstance(sqnr, (int, float)) and sqnr < COLLAPSE_SQNR_DB:
        problems.append(f"output '{name}' collapsed: SQNR {sqnr:.1f} dB < {COLLAPSE_SQNR_DB:g} dB")
    elif isinstance(sqnr, (int, float)) and (t.exact or not labelled) and sqnr < t.min_sqnr_db:
        problems.append(f"output '{name}' SQNR {sqnr:.1f} dB < {t.min_sqnr_db:g} dB required")
    agreement = entry.get("agreement") if judge_agreement else None
    classes = entry.get("classes")
    if isinstance(agreement, (int, float)) and isinstance(classes, int):
        chance = 1.5 / max(classes, 2)
        if agreement < chance:
            problems.append(f"output '{name}' top-1 agreement {agreement:.4f} is near chance ({classes} classes)")
        elif (t.exact or not labelled) and agreement < t.min_agreement:
            problems.append(f"output '{name}' top-1 agreement {agreement:.4f} < {t.min_agreement} required")
    return problems


def validate(outputs: Tensors, reference: Tensors, thresholds: Thresholds, labels: np.ndarray | None = None,
             metric: tuple[str, Metric] = ("top1", top1_accuracy), metric_on: str | None = None,
             task: str | None = None) -> Validation:
    """Compares every output and decides; `passed` is False with a message naming each output and figure. An
    encoder's (`feature-extraction`) embeddings are judged by SQNR, cosine and retrieval, never by argmax."""
    class_output = metric_output(reference, metric_on)      # the output a decision reads (agreement, metric)
    if class_output not in reference.names:
        return Validation.from_json({"passed": False, "outputs": [], "message": f"metric-output '{class_output}' is "
                                     f"not an output (outputs: {', '.join(reference.names)})"})
    found = _validate(outputs, reference, thresholds, labels, metric, class_output, task != FEATURE_EXTRACTION)
    try:
        return Validation.from_json(found)
    except ReportFieldError as exc:   # e.g. a custom metric's figure outside its range: fails closed, saying so
        return Validation.from_json({"passed": False, "outputs": [], "message": f"validation gave an impossible "
                                     f"figure: {exc}", "metric": found.get("metric")})


def _validate(outputs: Tensors, reference: Tensors, thresholds: Thresholds, labels: np.ndarray | None,
              metric: tuple[str, Metric], class_output: str, classes: bool = True) -> JsonObject:
    labels_inform, source_value = _labels_inform(reference, class_output, labels, metric)
    read_by_metric = class_output if labels_inform else None
    entries: list[JsonObject] = []
    problems: list[str] = []
    for name, test, ref in zip(reference.names, outputs.arrays, reference.arrays):
        entry = compare_output(name, test, ref,
                               force_classification=name == read_by_metric and metric[0] in CLASS_METRICS,
                               classes=classes)
        entry["decides"] = name == class_output and entry.get("agreement") is not None
        entry_problems = judge_output(entry, thresholds, name == read_by_metric, judge_agreement=entry["decides"])
        if ref.size == 0 and test.shape == ref.shape:   # nothing to compare is not agreement
            entry_problems.append(f"output '{name}' has no elements (shape {list(ref.shape)}): nothing to compare")
        entry["passed"] = not entry_problems
        entries.append(entry)
        problems += entry_problems
    n = len(reference)
    warnings: list[str] = []
    result: JsonObject = {"outputs": list(entries), "eval_samples": n, "thresholds": asdict(thresholds),
                          "warnings": warnings}
    if labels is not None and all("shape_mismatch" not in e for e in entries):
        index = reference.names.index(class_output)
        value = metric[1](outputs.arrays[index], labels) if all(e["finite"] for e in entries) else None
        if value is not None and not math.isfinite(value):   # JSON holds no NaN, and NaN is never "no drop"
            problems.append(f"{metric[0]} is {value} on the artifact's outputs: the metric cannot judge it")
            value = None
        result.update(metric=metric[0], metric_output=class_output, source_metric=source_value, accuracy=value,
                      accuracy_ci95=(wilson(value * n, n) if value is not None and metric[0] in BUILTIN_METRICS
                                     else None))
        if value is not None and source_value is not None:
            drop = round((source_value - value) * 100, 4)
            result["metric_drop_pts"] = drop
            if labels_inform and drop > thresholds.max_accuracy_drop:
                agreement = entries[index].get("agreement")
                problems.append(f"{metric[0]} drop {drop:.2f} pt > {thresholds.max_accuracy_drop:g} pt allowed "
                                f"({thresholds.accuracy_budget_from})"
                                + (f"; top-1 agreement {agreement:.4f}" if agreement is not None else ""))
        if not labels_inform:
            warnings.append(f"the source model scores {source_value} on the evaluation labels (chance "
                            f"level): the labels cannot judge an artifact, so agreement and SQNR decide")
    result["decided_by"] = _decided_by(thresholds, labels_inform and "metric_drop_pts" in result)
    if n < SMALL_EVAL_SET:
        first = next((e for e in entries if e.get("agreement_ci95")), None)
        interval = f"; top-1 agreement 95% interval {first['agreement_ci95']}" if first else ""
        warnings.append(f"only {n} evaluation samples (< {SMALL_EVAL_SET}): one flip moves agreement and "
                                  f"accuracy by {100 / max(n, 1):.1f} pt{interval}")
    classified = [e for e in entries if e.get("decides")] or [e for e in entries if e.get("agreement") is not None]
    result.update(passed=not problems, message="; ".join(problems) or None,
                  agreement=classified[0]["agreement"] if classified else None,
                  max_abs_diff=max(_numbers(entries, "max_abs_diff"), default=None),
                  min_sqnr_db=min(_numbers(entries, "sqnr_db"), default=None))
    return result


def _numbers(entries: list[JsonObject], key: str) -> list[float]:
    return [float(v) for e in entries if isinstance(v := e.get(key), (int, float))]


def _labels_inform(reference: Tensors, class_output: str, labels: np.ndarray | None,
                   metric: tuple[str, Metric]) -> tuple[bool, float | None]:
    """Labels judge an artifact only if the source itself scores above chance on them (an untrained or
    mislabelled set cannot tell a faithful artifact from a broken one)."""
    if labels is None:
        return False, None
    array = reference.as_dict()[class_output]
    source_value = metric[1](array, labels)
    if source_value is None:
        return False, None
    if metric[0] in CLASS_METRICS and is_classification(array):
        chance = {"top1": 1.0, "top5": 5.0}[metric[0]] / array.shape[-1]
        return source_value > 1.5 * chance, source_value
    return True, source_value


def _decided_by(t: Thresholds, labelled: bool) -> str:
    if t.exact:
        return "exact conversion: SQNR and agreement per output" + (", and the metric's drop" if labelled else "")
    if labelled:
        return "the task metric's drop (max-accuracy-drop), with SQNR for outputs it does not read and collapse checks"
    return "SQNR per output and top-1 agreement per classification output (no labels)"
