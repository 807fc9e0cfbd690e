"""The adb transport for Android phones: push the .tflite and a LiteRT `benchmark_model` binary the user
supplies (no registry package ships an Android build of it, and nothing is downloaded), run it with pinned
threads and warm-up, parse its timings.

No phone was available while this was written: command construction and output parsing are tested
against recorded output, and the no-device path against a real adb server; a run on a phone was not."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

from edge_pipeline.errors import ConfigError, InputError, RunnerUnavailable
from edge_pipeline.plugins import Transport
from edge_pipeline.types import JsonObject, ProfileSettings

REMOTE_DIR = "/data/local/tmp/edgepipe"
TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
                     r"Warmup \(avg\): ([\d.]+), Inference \(avg\): ([\d.]+)")
PERCENTILES = re.compile(r"count=(\d+) first=\d+ curr=\d+ min=(\d+) max=(\d+) avg=([\d.e+]+) std=(\d+)")


@dataclass(frozen=True)
class AdbDevice:
    serial: str | None = None
    benchmark: str | None = None     # local path of an Android arm64 benchmark_model binary
    port: int | None = None          # adb server port (-P)

    @classmethod
    def parse(cls, url: str) -> "AdbDevice":
        """adb, adb:SERIAL, adb:SERIAL?benchmark=PATH&port=5037"""
        if url.startswith("adb") and not url.startswith("adb:"):
            url = "adb:" + url[3:]
        parsed = urlparse(url)
        if parsed.scheme != "adb":
            raise ConfigError(f"--device '{url}' must look like adb[:SERIAL][?benchmark=PATH]")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - {"benchmark", "port"}
        if unknown:
            raise ConfigError(f"--device: unknown option(s) {', '.join(sorted(unknown))}; valid: benchmark, port")
        serial = parsed.path or parsed.netloc or None
        return cls(serial, query.get("benchmark"), int(query["port"]) if "port" in query else None)

    def adb(self, *args: str) -> list[str]:
        base = ["adb"] + (["-P", str(self.port)] if self.port else []) + (["-s", self.serial] if self.serial else [])
        return [*base, *args]

    def push_commands(self, artifact: Path) -> list[list[str]]:
        if not self.benchmark:
            raise ConfigError("an adb device needs ?benchmark=PATH: an Android arm64 LiteRT benchmark_model binary "
                              "(no registry package ships one, and edgepipe downloads nothing)")
        return [self.adb("shell", f"mkdir -p {REMOTE_DIR}"),
                self.adb("push", self.benchmark, f"{REMOTE_DIR}/benchmark_model"),
                self.adb("shell", f"chmod 755 {REMOTE_DIR}/benchmark_model"),
                self.adb("push", str(artifact), f"{REMOTE_DIR}/{artifact.name}")]

    def benchmark_command(self, artifact: Path, threads: int, warmup: int, runs: int) -> list[str]:
        remote = f"{REMOTE_DIR}/{shlex.quote(artifact.name)}"
        return self.adb("shell", f"{REMOTE_DIR}/benchmark_model --graph={remote} --num_threads={threads} "
                                 f"--warmup_runs={warmup} --num_runs={runs} --enable_op_profiling=false")


def parse_benchmark_output(text: str) -> dict[str, float]:
    """Timings from benchmark_model's log, in milliseconds."""
    found = TIMINGS.search(text)
    if not found:
        raise RunnerUnavailable("benchmark_model printed no inference timings: "
                                f"{(text.strip().splitlines() or ['no output'])[-1][:200]}")
    init, first, warmup, avg = (float(v) / 1000 for v in found.groups())
    result = {"init_ms": init, "first_ms": first, "warmup_avg_ms": warmup, "mean": avg}
    runs = [m for m in PERCENTILES.finditer(text)]
    if runs:
        count, low, high, mean, std = runs[-1].groups()
        result.update(runs=int(count), min=int(low) / 1000, max=int(high) / 1000, stdev=int(std) / 1000)
    return result


def connected_serials(device: AdbDevice) -> list[str]:
    if shutil.which("adb") is None:
        raise RunnerUnavailable("adb is not installed (Debian package 'adb')")
    proc = subprocess.run(device.adb("devices"), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RunnerUnavailable(f"adb devices failed: {proc.stderr.strip()[-200:]}")
    return [ln.split()[0] for ln in proc.stdout.splitlines()[1:] if ln.strip().endswith("device")]


def check_device(device: AdbDevice) -> str:
    serials = connected_serials(device)
    if not serials:
        raise RunnerUnavailable("no Android device is connected (adb devices lists none)")
    if device.serial and device.serial not in serials:
        raise RunnerUnavailable(f"device {device.serial} is not connected (connected: {', '.join(serials)})")
    if device.serial is None and len(serials) > 1:
        raise RunnerUnavailable(f"several devices are connected ({', '.join(serials)}): name one with adb:SERIAL")
    return device.serial or serials[0]


def supported(artifact: Path) -> None:
    if artifact.suffix != ".tflite":
        raise InputError(f"{artifact.name}: the adb runner measures .tflite files with benchmark_model; "
                         f"run other formats on the host or an ssh board")


def profile_on_phone(device: AdbDevice, artifact: Path, threads: int, warmup: int, runs: int) -> JsonObject:
    """Pushes and runs benchmark_model; returns one latency entry labelled with the phone's serial."""
    supported(artifact)
    serial = check_device(device)
    pinned = AdbDevice(serial, device.benchmark, device.port)
    for command in pinned.push_commands(artifact):
        _run(command)
    timings = parse_benchmark_output(_run(pinned.benchmark_command(artifact, threads, warmup, runs)))
    model = _run(pinned.adb("shell", "getprop ro.product.model")).strip() or "?"
    _run(pinned.adb("shell", f"rm -rf {REMOTE_DIR}"))
    plural = "s" if threads != 1 else ""
    return {**timings, "p50": None, "p90": None, "threads": threads, "warmup": warmup,
            "measured_on": f"device adb:{serial} ({model}), benchmark_model, {threads} thread{plural}"}


def _run(command: list[str]) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RunnerUnavailable(f"{' '.join(command[:4])}...: {(proc.stderr or proc.stdout).strip()[-200:]}")
    return proc.stdout


class AdbTransport(Transport):
    """The `edgepipe.transports` plugin for adb phones: `edgepipe profile` times a .tflite with benchmark_model
    there. It runs no runner (nothing reads outputs back), so a build cannot measure on it."""

    name: ClassVar[str] = "adb"
    schemes: ClassVar[tuple[str, ...]] = ("adb",)

    def parse(self, url: str | None) -> AdbDevice:
        return AdbDevice.parse(url or self.schemes[0])

    def measure_artifact(self, artifact: Path, url: str, settings: ProfileSettings) -> JsonObject:
        """Latency from benchmark_model on the phone; it reads no outputs back, so agreement is not measured."""
        entry = profile_on_phone(AdbDevice.parse(url), artifact, 1, settings.warmup, settings.runs)
        return {"runtime": "LiteRT benchmark_model (on the phone)", "runtime_version": None, "input_shape": None,
                "latency": [entry], "sample_outputs": None, "op_profile": None}
