"""The plugin kinds and what the core reads from each. Built-ins in `quantization/`, `targets/`,
`edge_pipeline/transports/` and `edge_pipeline/bundlers/` implement these like any third party; the `*Base` classes hold the documented defaults of the optional
members in one place (a plugin that does not inherit one gets them from `registry.check` when loaded)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np

from edge_pipeline.tensors import Tensors


@dataclass
class Model:
    """A live source model inside a worker: framework, object, example inputs, provenance."""

    framework: str
    module: Any
    example_inputs: tuple[Any, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    input_names: tuple[str, ...] = ()     # in the order `module` takes them positionally
    converter: "ConverterSettings" = field(default_factory=lambda: ConverterSettings())   # set by transforms


@dataclass(frozen=True)
class Int8Fallback:
    """What TFLiteConverter's full-int8 export needs to rank layers and keep sensitive ones float."""

    data: "DataBundle"
    budget: float | None     # the target's max-accuracy-drop (None: rank only)
    rank: str                # the `[quantization] sensitivity` mode
    # (converter, flatbuffer, keras model, data, budget, rank) -> (flatbuffer, notes): the quantizer's own
    # search, handed to the exporter so that exporters never import quantizers
    improve: Callable[..., tuple[bytes, dict[str, Any]]]


@dataclass(frozen=True)
class ConverterSettings:
    """Settings a transform leaves for the exporter when quantization happens inside the converter: typed, so
    a producer and its consumer cannot drift apart on a key name."""

    tflite_mode: str = "fp32"                     # TFLiteConverter: fp32 | dynamic | fp16 | int8
    representative: Tensors | None = None         # TFLiteConverter int8 calibration samples
    int8_fallback: Int8Fallback | None = None     # TFLiteConverter int8 sensitivity / fallback
    tfjs_weights: str | None = None               # TF.js weight quantization dtype: float16 | uint8
    coreml_precision: str | None = None           # Core ML compute precision: fp16 (None: fp32)
    litert_quant_config: Any = None               # litert-torch QuantConfig from the litert-int8 transform


@dataclass
class DataBundle:
    """Example, calibration and evaluation samples, one named array per model input (dtypes kept)."""

    example: Tensors
    calibration: Tensors
    eval_inputs: Tensors
    eval_labels: np.ndarray | None

    @classmethod
    def single(cls, name: str, example: np.ndarray, calibration: np.ndarray, eval_inputs: np.ndarray,
               eval_labels: np.ndarray | None) -> "DataBundle":
        """A single-input model's data (the built-in examples)."""
        one = lambda a: Tensors((name,), (np.ascontiguousarray(a),))   # noqa: E731
        return cls(one(example), one(calibration), one(eval_inputs), eval_labels)

    @property
    def batch(self) -> int:
        """The artifact's fixed batch size: the example inputs' leading dimension."""
        return len(self.example)


class Session(Protocol):
    """An opened artifact. Optional members, read when present: `input_specs`, `output_names`,
    `runtime_label`, `runtime_version`, `cores`, `device_label`, `benchmark(...)`, `run_batches(...)`."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


@runtime_checkable
class Transform(Protocol):
    """Rewrites a Model (pruning, quantization before or inside export), or a finished artifact file."""

    name: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    needs_calibration: ClassVar[bool]
    distributions: ClassVar[tuple[str, ...]]       # default (): packages whose versions key the cache
    applies_to: ClassVar[str]                      # default "model"; "artifact": `apply_artifact` on the file
    accuracy_budget: ClassVar[bool]                # default False; True: gets max_accuracy_drop and sensitivity
    bridge: ClassVar[tuple[str, str] | None]       # default None; (from, to) framework for bridge transforms
    calibration_methods: ClassVar[tuple[str, ...]]  # default ("minmax",): methods a calibrated transform offers
    calibration_method: str                        # default "minmax"; set by the export stage from the config

    def apply(self, model: Model, data: DataBundle) -> Model: ...   # required when applies_to == "model"

    # required when applies_to == "artifact": quantizes `src` into `dest`, returns the quantization notes
    # def apply_artifact(self, src: Path, dest: Path, data: DataBundle) -> dict[str, Any]: ...


@runtime_checkable
class Exporter(Protocol):
    """Writes one artifact format from a Model. `precisions` maps precision -> transform name (or None)."""

    name: ClassVar[str]
    format: ClassVar[str]
    suffix: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    precisions: ClassVar[dict[str, str | None]]
    runner: ClassVar[str | None]                 # None: no runtime here can run it (reported unvalidated)
    distributions: ClassVar[tuple[str, ...]]     # packages whose versions key the cache
    is_directory: ClassVar[bool]                 # default False: the artifact is a folder, written atomically
    onnx_based: ClassVar[bool]                   # default False; True: `to_onnx`, ONNX transforms, then `finish`
    unvalidated_reason: ClassVar[str | None]     # default None: why an artifact without a runner is not validated

    def export(self, model: Model, dest: Path) -> dict[str, Any]: ...

    # required when onnx_based: writes the model as ONNX, and turns a (possibly quantized) ONNX file into the
    # artifact, returning its metadata
    # def to_onnx(self, model: Model, onnx_path: Path) -> None: ...
    # def finish(self, onnx_path: Path, dest: Path) -> dict[str, Any]: ...


@runtime_checkable
class Runner(Protocol):
    """Loads an artifact in its real runtime."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    distribution: ClassVar[str]
    variants: ClassVar[tuple[str | None, ...]]   # default (None,): runtime backends; the first validates
    suffixes: ClassVar[dict[str, str]]           # default {}: file suffix (or file in a folder) -> format
    preload: Callable[[], None] | None           # default None; in-process runtimes: import before measuring
    signature: Callable[[Path], dict[str, Any]] | None   # default None: tensors as an app must encode them
    op_profile: Callable[[Path, list[np.ndarray], int], dict[str, Any]] | None   # default None: per-op times

    def open(self, path: Path, threads: int) -> Session: ...   # with variants: open(path, threads, variant)

    def bundle_files(self) -> dict[str, Path]: ...   # default {}: files a sample app vendors (relative -> source)


@runtime_checkable
class Transport(Protocol):
    """Where a build or `edgepipe profile` measures, chosen by the `--device` URL's scheme (no device: the
    transport named "local"). A transport offers `wrap_runner` (the artifact runs there through a runner), or
    `measure_artifact` (a device tool times the file itself, e.g. a phone's benchmark_model), or both."""

    name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]          # URL schemes it answers: "ssh" for ssh://..., "adb" for adb:...
    in_process: ClassVar[bool]                  # default False; True: it measures in the measuring process itself
    # default None: wraps a host runner so its sessions run (and are labelled) on the device at `url`
    wrap_runner: Callable[[Any, str | None], Any] | None
    # default None: (artifact, url, ProfileSettings) -> the measure dict, without a runner (profile only)
    measure_artifact: Callable[[Path, str, Any], dict[str, Any]] | None

    def parse(self, url: str) -> Any: ...   # a malformed URL raises a one-line ConfigError, before any work


@runtime_checkable
class Bundler(Protocol):
    """Turns a build folder into a demo app: one `sample_apps/<name>/` template, the formats its code runs, and
    what it generates beyond the copied models (C arrays, Kotlin/Swift model info, a board runtime)."""

    name: ClassVar[str]                           # the template's name (a target's `bundle`)
    formats: ClassVar[tuple[str, ...] | None]     # default None: the app runs any validated format
    asset_root: ClassVar[str]                     # default ".": where in the template the app reads its files
    template_dir: ClassVar[Path | None]           # default None: edgepipe's sample_apps/<name>

    # default {}: writes extra files into the staged bundle `dest`; returns what the bundle summary reports
    def generate(self, dest: Path, report: dict[str, Any], folder: Path) -> dict[str, Any]: ...


class TransformBase:
    """Defaults of a Transform's optional members; a model transform overrides `apply`."""

    name: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ()
    applies_to: ClassVar[str] = "model"
    accuracy_budget: ClassVar[bool] = False
    bridge: ClassVar[tuple[str, str] | None] = None
    calibration_methods: ClassVar[tuple[str, ...]] = ("minmax",)
    calibration_method: str = "minmax"


class ArtifactTransformBase(TransformBase):
    """A transform of a finished artifact file (ORT quantization, ai-edge-quantizer recipes)."""

    applies_to: ClassVar[str] = "artifact"


class ExporterBase:
    """Defaults of an Exporter's optional members."""

    name: ClassVar[str]
    format: ClassVar[str]
    suffix: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    precisions: ClassVar[dict[str, str | None]]
    runner: ClassVar[str | None]
    distributions: ClassVar[tuple[str, ...]]
    is_directory: ClassVar[bool] = False
    onnx_based: ClassVar[bool] = False
    unvalidated_reason: ClassVar[str | None] = None


class RunnerBase:
    """Defaults of a Runner's optional members (an optional method is None when the runtime lacks it)."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    distribution: ClassVar[str]
    variants: ClassVar[tuple[str | None, ...]] = (None,)
    suffixes: ClassVar[dict[str, str]] = {}
    preload: ClassVar[Callable[..., None] | None] = None
    signature: ClassVar[Callable[..., dict[str, Any]] | None] = None
    op_profile: ClassVar[Callable[..., dict[str, Any]] | None] = None

    def bundle_files(self) -> dict[str, Path]:
        return {}


class TransportBase:
    """Defaults of a Transport's optional members."""

    name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    in_process: ClassVar[bool] = False
    wrap_runner: ClassVar[Callable[..., Any] | None] = None
    measure_artifact: ClassVar[Callable[..., dict[str, Any]] | None] = None


class BundlerBase:
    """Defaults of a Bundler's optional members: an app that runs any format and needs nothing generated."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...] | None] = None
    asset_root: ClassVar[str] = "."
    template_dir: ClassVar[Path | None] = None

    def generate(self, dest: Path, report: dict[str, Any], folder: Path) -> dict[str, Any]:
        return {}
