"""Runs TF.js graph models in Node with @tensorflow/tfjs (wasm backend; the cpu backend for comparison).

The JS side (tfjs_node/runner.cjs, pinned by its package-lock.json) times each inference itself, so the
pipe between the processes never enters a latency figure. It reads every shard model.json names, so those paths
are checked here first (`model_files`): a `../secret.bin`, an absolute path or a symlink is refused before Node
starts."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar, TypedDict, TypeVar

import numpy as np

from edge_pipeline.errors import InputError, RunnerUnavailable, StageFailed
from edge_pipeline.fsutil import regular_file
from edge_pipeline.paths import inside
from edge_pipeline.plugins import Runner, Session
from edge_pipeline.tensors import Tensors, TensorSpec

NODE_DIR = Path(__file__).with_name("tfjs_node")
TFJS_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.uint8}


class WireTensor(TypedDict):
    """A tensor on the pipe to runner.cjs (one JSON line per request and per reply)."""

    data: str            # base64 of the raw values
    shape: list[int]
    dtype: str


class InputInfo(TypedDict):
    name: str
    shape: list[int | None] | None
    dtype: str


class ReadyReply(TypedDict, total=False):
    backend: str
    tfjs: str
    inputs: list[InputInfo]
    outputs: list[str]


class RunReply(TypedDict):
    outputs: list[WireTensor]


class BenchReply(TypedDict):
    samples_ms: list[float]


R = TypeVar("R", ReadyReply, RunReply, BenchReply)


def _encode(array: np.ndarray, dtype: str) -> WireTensor:
    """TF.js tensors are float32, int32 or bool: int64 token ids go as int32, bools as bytes."""
    if dtype not in TFJS_DTYPES:
        raise InputError(f"TF.js cannot take an input of dtype {dtype}")
    data = np.asarray(array, dtype=TFJS_DTYPES[dtype], order="C")
    return {"data": base64.b64encode(data.tobytes()).decode(), "shape": list(data.shape), "dtype": dtype}


def node_modules() -> Path:
    return NODE_DIR / "node_modules"


def check_installed() -> str:
    node = shutil.which("node")
    if node is None:
        raise RunnerUnavailable("the TF.js runner needs Node.js (`node` is not on PATH)")
    if not (node_modules() / "@tensorflow" / "tfjs").is_dir():
        raise RunnerUnavailable(f"the TF.js runner's packages are not installed: run `npm ci --prefix {NODE_DIR}` "
                                f"(make setup does this)")
    return node


def model_files(path: Path) -> list[Path]:
    """model.json of a TF.js model (its folder, or the model.json in it) and every shard its weightsManifest
    names: each a regular file inside the folder with no symlink on its path, or InputError naming it."""
    folder = path if path.is_dir() else path.parent
    model_json = regular_file(inside(folder, "model.json", "TF.js model file"), "TF.js model file")
    try:
        manifest = json.loads(model_json.read_bytes()).get("weightsManifest", [])
        shards = [shard for group in manifest for shard in group["paths"]]
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise InputError(f"{model_json} is not a TF.js model.json ({type(exc).__name__}: {exc})") from None
    what = f"{model_json} weightsManifest path"
    return [model_json, *(regular_file(inside(folder, shard, what), what) for shard in shards)]


class TfjsNodeRunner(Runner):
    name: ClassVar[str] = "tfjs-node"
    runtime: ClassVar[str] = "TF.js in Node"
    distribution: ClassVar[str] = "@tensorflow/tfjs"
    variants: ClassVar[tuple[str, ...]] = ("wasm", "cpu")   # first one validates; all are timed
    suffixes: ClassVar[dict[str, str]] = {"model.json": "tfjs"}   # a folder holding model.json
    in_process: ClassVar[bool] = False   # Node runs the model: its memory is not this process's

    def bundle_files(self) -> dict[str, Path]:
        """The scripts and wasm binaries a web page needs, from the pinned npm packages (no CDN)."""
        check_installed()
        tfjs = node_modules() / "@tensorflow" / "tfjs" / "dist"
        wasm = node_modules() / "@tensorflow" / "tfjs-backend-wasm" / "dist"
        files = {"vendor/tf.min.js": tfjs / "tf.min.js",
                 "vendor/tf-backend-wasm.min.js": wasm / "tf-backend-wasm.min.js"}
        files.update({f"vendor/{p.name}": p for p in sorted(wasm.glob("*.wasm"))})
        return files

    def open(self, path: Path, threads: int, variant: str | None = None) -> TfjsSession:
        """A Node session on the model's folder, once every file it will read is known to be inside it."""
        model_json = model_files(path)[0]
        return TfjsSession(model_json.parent, variant or self.variants[0], threads)


class TfjsSession(Session):
    """One Node process holding the model; it times inferences itself (the pipe stays out of the figures)."""

    times_itself = True

    def __init__(self, model_dir: Path, backend: str, threads: int):
        node = check_installed()
        self.backend = backend
        self._proc = subprocess.Popen([node, str(NODE_DIR / "runner.cjs"), str(model_dir), backend, str(threads)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=NODE_DIR)
        ready = self._read(ReadyReply)
        self.runtime_version = ready.get("tfjs")
        self.runtime_label = f"TF.js {ready.get('tfjs')} {ready.get('backend')} backend in Node"
        self._specs = [TensorSpec(str(i["name"]).split(":")[0], _shape(i["shape"]), i["dtype"])
                       for i in ready.get("inputs", [])]
        self.input_specs = self._specs
        self.output_names = list(ready.get("outputs", [])) or None

    def _read(self, shape: type[R]) -> R:
        """The next reply, of the shape the request expects (`shape`); an error reply raises."""
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            raise StageFailed(f"the TF.js runner exited: {err.strip().splitlines()[-1:] or 'no output'}")
        reply = json.loads(line)
        if "error" in reply:
            raise InputError(f"TF.js ({self.backend}): {reply['error']}")
        return reply

    def _ask(self, op: str, inputs: list[np.ndarray], shape: type[R], **fields: int) -> R:
        request = {"op": op, "inputs": [_encode(x, spec.dtype) for x, spec in zip(inputs, self._specs)], **fields}
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._read(shape)

    def run_batches(self, inputs: Tensors, batch: int) -> list[np.ndarray]:
        reply = self._ask("run", list(inputs.arrays), RunReply, batch=batch)
        return [np.frombuffer(base64.b64decode(o["data"]), dtype=TFJS_DTYPES[o["dtype"]]).reshape(o["shape"])
                for o in reply["outputs"]]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_batches(Tensors(tuple(s.name for s in self._specs), tuple(inputs)), len(inputs[0]))

    def benchmark(self, inputs: list[np.ndarray], warmup: int, runs: int) -> np.ndarray:
        reply = self._ask("bench", inputs, BenchReply, warmup=warmup, runs=runs)
        return np.asarray(reply["samples_ms"], dtype=np.float64)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close() if self._proc.stdin else None
            self._proc.wait(timeout=10)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _shape(dims: list[int | None] | None) -> tuple[int | str, ...]:
    """TF.js marks a free dimension -1 (or null)."""
    return tuple(d if d is not None and d >= 0 else "dynamic" for d in (dims or []))
