"""`edgepipe build | profile | bundle | plugins | targets`. Exit codes: 0 ok, 1 gate failed, 2 usage/config/input,
3 environment (missing dependency, no device, disk full, stdout that cannot be written), 4 a stage failed,
130 interrupted (143 SIGTERM, 129 SIGHUP).

A thin client of the Python API (`edge_pipeline.api`): commands parse their arguments, call it and render what it
returns. Commands raise EdgepipeError (or anything else); guard.GuardedGroup is the one place that turns it into a
line and an exit code."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_pipeline import api
from edge_pipeline.cli.explore_cmd import explore
from edge_pipeline.cli.gate_cmd import baseline_app, gate
from edge_pipeline.cli.guard import GuardedGroup, err_console, out_console, warn, watch_output
from edge_pipeline.cli.history_cmd import history
from edge_pipeline.cli.render import StageProgress, cell, report_table, show
from edge_pipeline.cli.tune_cmd import tune
from edge_pipeline.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_STAGE_FAILED
from edge_pipeline.paths import plain_name
from edge_pipeline.report.gating import parse_budget
from edge_pipeline.report.model import Report
from edge_pipeline.version import __version__

app = typer.Typer(
    name="edgepipe", cls=GuardedGroup, no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Take a trained model to validated, profiled edge artifacts: "
         "prune -> quantize -> export -> validate -> profile -> gate.\n\n"
         "Exit codes: 0 ok, 1 a budget failed (or the gated build failed), 2 usage, config or input error, "
         "3 environment (missing dependency, no device, disk full, stdout that cannot be written), 4 a stage failed, "
         "130 interrupted (143 SIGTERM, 129 SIGHUP).")
DEVICE_HELP = ("Measure on a connected Linux board instead of this host: ssh://user@host[:port]"
               "[?identity=KEY&known_hosts=FILE&python=PATH]. Host keys are verified, never accepted blindly.")
MAX_MEMORY_HELP = ("Memory budget in MiB: declared sizes (npz arrays, model inputs, example shapes) above it are "
                   "refused before anything is allocated. Default: max-memory-mb in the config, else half the "
                   "memory this process may use.")
EXIT_FOR_STATUS = {"stage_failed": EXIT_STAGE_FAILED, "gate_failed": EXIT_GATE_FAILED}


def _version(value: bool) -> None:
    if value:
        out_console.print(f"edgepipe {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Root options."""


@app.command()
def build(
    target: Annotated[str, typer.Option(
        "--target", "-t", help="Target profile to build for (see `edgepipe targets`).")] = "android",
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output folder; artifacts go to OUT/<target>/.")] = Path("build/edgepipe"),
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="edgepipe.toml or pyproject.toml to read (default: discovered in the current "
                               "folder).")] = None,
    example: Annotated[Optional[str], typer.Option(
        "--example", help="Built-in example model to use instead of the configured one (torch-digits).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the report as JSON on stdout (progress stays on stderr).")] = False,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Rebuild every stage even when a cached result matches.")] = False,
    budget: Annotated[Optional[list[str]], typer.Option(
        "--budget", "-b", help="A limit name=value, e.g. max-size-kb=900, max-accuracy-drop=0.5, max-latency-ms=12 "
                               "(repeatable; overrides the config).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help=DEVICE_HELP)] = None,
    max_memory: Annotated[Optional[float], typer.Option("--max-memory", metavar="MIB", help=MAX_MEMORY_HELP)] = None,
    prune: Annotated[Optional[float], typer.Option(
        "--prune", help="Prune this fraction of the weights (0-1) before exporting: magnitude (unstructured) "
                        "unless --prune-structured.")] = None,
    prune_structured: Annotated[bool, typer.Option(
        "--prune-structured", help="With --prune: remove whole channels (PyTorch: torch-pruning; Keras: rebuilt "
                                   "with fewer filters), so the model really shrinks.")] = False,
    fine_tune: Annotated[Optional[str], typer.Option(
        "--fine-tune", help="With --prune: 'pkg.module:fn' called as fn(model) to recover accuracy after "
                            "pruning.")] = None,
    prune_scope: Annotated[Optional[str], typer.Option(
        "--prune-scope", help="Unstructured pruning: 'global' (one magnitude threshold across layers, default) or "
                              "'layer' (the same share in every layer).")] = None,
    sensitivity: Annotated[Optional[str], typer.Option(
        "--sensitivity", help="Per-layer int8 sensitivity ranking: on-failure (default: only when a "
                              "max-accuracy-drop budget is missed, then fall back), always, or never (overrides "
                              "[quantization] sensitivity).")] = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        "--tensorboard", metavar="DIR", help="Append this build's figures to a TensorBoard log as the next step "
                                             "(DIR/<target>/; over [report] tensorboard).")] = None,
) -> None:
    """Build, validate and profile every artifact the target asks for, then check its budgets.

    Writes OUT/<target>/: the artifacts, manifest.json (sha256 of each), report.json and report.md.
    """
    from edge_pipeline.building.cache import cache_root
    from edge_pipeline.cli.capture import native_output_to

    budgets = dict(parse_budget(text) for text in budget or [])
    watch_output(out / plain_name(target, "--target"))
    log = cache_root() / "logs" / f"build-{target}-{os.getpid()}.log"
    try:
        with StageProgress(err_console) as progress, native_output_to(log, [err_console, out_console]):
            report = api.build(target, out_dir=out, config=config, example=example, prune=prune,
                               prune_structured=prune_structured, fine_tune=fine_tune, prune_scope=prune_scope,
                               sensitivity=sensitivity, use_cache=not no_cache, budgets=budgets, device=device,
                               log_file=log, progress=progress, max_memory_mb=max_memory, tensorboard=tensorboard)
    finally:
        if log.is_file() and not log.stat().st_size:
            log.unlink()
    _finish(report, out / target, as_json)


def _finish(report: Report, folder: Path, as_json: bool) -> None:
    """Prints the report (table or JSON) and exits with the code its status calls for."""
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, default=str, allow_nan=False) + "\n")
    else:
        out_console.print(report_table(report))
        for a in report.artifacts:
            if a.error:
                show(out_console, f"{a.label} {a.error.message}", mark="✗", style="red")
        for check in report.checks:
            if not check.passed:
                show(out_console, f"budget {check.message}", mark="✗", style="red")
        for note in [*_config_warnings(report), *_validation_notes(report)]:   # e.g. two config files
            show(out_console, note, mark="!", style="yellow", whole=True)
        show(out_console, f"Report: {folder / 'report.md'}")
        if report.log:
            show(out_console, f"Native libraries' output: {folder / report.log}")
        if report.history is not None:
            show(out_console, f"TensorBoard: step {report.history.step} appended to {report.history.tensorboard}")
    raise typer.Exit(EXIT_FOR_STATUS.get(report.status or "", EXIT_OK))


def _config_warnings(report: Report) -> list[str]:
    warnings = (report.config or {}).get("warnings")
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def _validation_notes(report: Report) -> list[str]:
    """Validation's own caveats on its figures (a small evaluation set, labels at chance), once per text."""
    notes: list[str] = []
    for a in report.artifacts:
        for text in a.validation.warnings if a.validation is not None else ():
            if text not in notes:
                notes.append(text)
    return notes


@app.command()
def profile(
    artifact: Annotated[Path, typer.Argument(
        help="A .tflite, .pte, .onnx, .ort or .ptl file, or a TF.js folder (model.json) - built by edgepipe or "
             "not.")],
    target: Annotated[str, typer.Option(
        "--target", "-t", help="Label the measurements with this device profile (its thread counts "
                               "apply).")] = "host",
    inputs: Annotated[Optional[Path], typer.Option(
        "--inputs", help=".npz with one array per input, matched by name (or by order for arr_0, arr_1, ...); "
                         "default: seeded random inputs of each declared shape and dtype.")] = None,
    reference: Annotated[Optional[Path], typer.Option(
        "--reference", help="Another artifact to compare outputs with (per output: SQNR, cosine, agreement, max "
                            "abs diff).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Reports go to OUT/<artifact name>/.")] = Path("build/edgepipe/profile"),
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per thread count.")] = 100,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 10,
    budget: Annotated[Optional[list[str]], typer.Option(
        "--budget", "-b", help="Limit name=value (repeatable).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help=DEVICE_HELP)] = None,
    max_memory: Annotated[Optional[float], typer.Option("--max-memory", metavar="MIB", help=MAX_MEMORY_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Profile an existing artifact in its own runtime: size, latency and, with --reference, agreement."""
    budgets = dict(parse_budget(b) for b in budget or [])
    watch_output(out / artifact.name)
    report = api.profile(artifact, target=target, out_dir=out, inputs=inputs, reference=reference, runs=runs,
                         warmup=warmup, budgets=budgets, device=device, max_memory_mb=max_memory)
    _finish(report, out / artifact.name, as_json)


@app.command()
def bundle(
    target: Annotated[str, typer.Option(
        "--target", "-t", help="The built target whose artifacts go in.")] = "android",
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="The build's output folder (OUT/<target>/ must hold a build).")] = Path("build/edgepipe"),
    template: Annotated[Optional[str], typer.Option(
        "--template", help="sample_apps/ template (default: the target's).")] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Zip file name without .zip (a plain name, no folders).")] = None,
) -> None:
    """Fill a sample_apps/ template with a build's validated artifacts and write it as a folder and a zip."""
    folder = out / target
    watch_output(folder / "bundle")
    summary = api.bundle(target, out_dir=out, template=template, name=name)
    show(out_console, f"bundle '{summary.template}' for {target}: {folder / 'bundle'} and {folder / summary.zip} "
                      f"({len(summary.files)} files)")


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List registered exporters, transforms, runners, targets, transports and bundlers; a broken plugin, or one
    hidden by a built-in of the same name, is named in a warning and the rest are listed."""
    rows = api.plugins()
    warn(rows.warnings)
    if as_json:
        payload = {"plugins": [vars(r) for r in rows], "warnings": list(rows.warnings)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="edgepipe plugins")
    for col in ("kind", "name", "provided by", "object"):
        table.add_column(col)
    for r in rows:
        table.add_row(cell(r.kind), cell(r.name), cell(r.distribution or "-"), cell(r.value))
    out_console.print(table)


@app.command()
def targets(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List target profiles with the artifacts they build and their budgets."""
    loaded = api.targets()
    warn(loaded.warnings)
    if as_json:
        rows = [{"name": t.name, "description": t.description, "outputs": list(t.outputs), "runners": list(t.runners),
                 "threads": list(t.threads), "memory_mb": t.memory_mb, "budgets": dict(t.budgets), "bundle": t.bundle,
                 "device_class": t.device_class,
                 "task_outputs": {task: list(outputs) for task, outputs in t.task_outputs.items()}} for t in loaded]
        sys.stdout.write(json.dumps({"targets": rows, "warnings": list(loaded.warnings)}, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="edgepipe targets")
    for column in ("target", "outputs", "runners", "threads", "memory MiB", "budgets", "bundle", "description"):
        table.add_column(column)
    for t in loaded:
        outputs = "; ".join([", ".join(t.outputs), *(f"{task}: {', '.join(o)}" for task, o in t.task_outputs.items())])
        table.add_row(*map(cell, (t.name, outputs, ", ".join(t.runners), ", ".join(map(str, t.threads)),
                                  f"{t.memory_mb:g}" if t.memory_mb else "-",
                                  ", ".join(f"{k}={v:g}" for k, v in t.budgets.items()) or "-", t.bundle or "-",
                                  t.description)))
    out_console.print(table)


app.command()(gate)
app.command()(history)
app.command()(explore)
app.command()(tune)
app.add_typer(baseline_app, name="baseline")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
