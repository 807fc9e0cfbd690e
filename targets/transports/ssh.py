"""The ssh transport for Linux boards: push an artifact and a runner script, run it with the board's own
Python runtime, pull outputs and timings, clean up (the channel itself: targets/transports/ssh_channel.py)."""
from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_pipeline.errors import InputError, RunnerUnavailable
from edge_pipeline.plugins import DecoderSession, Runner, Session, Transport
from edge_pipeline.tensors import Tensors
from targets.transports.ssh_channel import BoardFolder, SshDevice, SshTransport
from targets.transports.ssh_decoder import RemoteDecoderSession

RUNNER_SCRIPT = Path(__file__).with_name("remote_runner.py")


class DeviceRunner(Runner):
    """Wraps a local runner's identity; the artifact runs on the device through the transport. It keeps the Runner
    defaults: one variant, no preload (the memory is the device's), no signature, no op profile. Built with
    `around`, which declares the local runner's name and runtime (on that device) on a class of its own."""

    in_process: ClassVar[bool] = False

    def __init__(self, local: Runner, device: SshDevice):
        self.local, self.device = local, device
        self.transport = SshTransport(device)

    @classmethod
    def around(cls, local: Runner, url: str | None) -> DeviceRunner:
        device = SshDevice.parse(url or "")
        kind = type(local)

        class OnDevice(DeviceRunner):
            name = kind.name
            runtime = f"{kind.runtime} on {device.label}"
            distribution = kind.distribution

        OnDevice.__name__ = OnDevice.__qualname__ = f"{kind.__name__}OnDevice"
        return OnDevice(local, device)

    def open(self, path: Path, threads: int, variant: str | None = None) -> RemoteSession:
        if path.is_dir():
            raise InputError(f"{path.name}: folder artifacts (TF.js) cannot run on an ssh device; use the host runner")
        session = RemoteSession(self.transport, path, threads)
        try:   # the artifact is also here: its declared inputs and outputs come from the local runtime
            local = self.local.open(path, 1)
            session.input_specs, session.output_names = local.input_specs, local.output_names
        except Exception:
            session.input_specs = session.output_names = None
        return session

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        """A language-model folder stepped on the board by the program runner edgepipe steps it with here."""
        return RemoteDecoderSession.open(self.transport, path, threads)


class SshBoardTransport(Transport):
    """The `edgepipe.transports` plugin for ssh://user@host boards: the artifact runs there through DeviceRunner."""

    name: ClassVar[str] = "ssh"
    schemes: ClassVar[tuple[str, ...]] = ("ssh",)

    def parse(self, url: str | None) -> SshDevice:
        return SshDevice.parse(url or "")

    def wrap_runner(self, runner: Runner, url: str | None) -> Runner:
        return DeviceRunner.around(runner, url)


class RemoteSession(Session):
    """An artifact pushed to the board; each call runs remote_runner.py there, which also times the runs."""

    times_itself = True

    def __init__(self, transport: SshTransport, artifact: Path, threads: int):
        self.transport, self.threads = transport, threads
        board = BoardFolder.create(transport)
        self.remote_dir, self.cores, self.device_label = board.path, board.cores, board.label
        self.remote_artifact = f"{self.remote_dir}/{artifact.name}"
        transport.push(artifact, self.remote_artifact)
        transport.push(RUNNER_SCRIPT, f"{self.remote_dir}/remote_runner.py")

    def _invoke(self, xs: list[np.ndarray], batch: int, warmup: int = 0,
                runs: int = 0) -> tuple[list[float], list[np.ndarray] | None]:
        """The timings (when `runs`) or the outputs of one run of remote_runner.py on the device."""
        with tempfile.TemporaryDirectory() as tmp:
            local_in, local_out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            np.savez(local_in, **{f"x{i}": np.asarray(x, order="C") for i, x in enumerate(xs)})
            self.transport.push(local_in, f"{self.remote_dir}/in.npz")
            d = self.remote_dir
            python, artifact = shlex.quote(self.transport.device.python), shlex.quote(self.remote_artifact)
            command = (f"{python} {d}/remote_runner.py {artifact} {d}/in.npz {d}/out.npz --threads {self.threads} "
                       f"--batch {batch} --warmup {warmup} --runs {runs}")
            printed = self.transport.run(command, "running the artifact").splitlines()
            lines = [ln for ln in printed if ln.startswith("{")]
            reply = json.loads(lines[-1]) if lines else {"error": "the runner printed no result"}
            if "error" in reply:
                raise RunnerUnavailable(f"{self.transport.device.label}: {reply['error']}")
            self.runtime_label = f"{reply['runtime']} on {self.device_label}"
            self.runtime_version = reply.get("version")
            samples = [float(ms) for ms in reply["samples_ms"]]
            if runs:
                return samples, None
            self.transport.pull(f"{d}/out.npz", local_out)
            with np.load(local_out, allow_pickle=False) as npz:
                return samples, [npz[f"y{i}"] for i in range(len(npz.files))]

    def run_batches(self, inputs: Tensors, batch: int) -> list[np.ndarray] | None:
        """Every batch in one round trip; data batched along other axes goes call by call."""
        if inputs.batch_dims:
            return None
        return self._invoke(list(inputs.arrays), batch)[1] or []

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self._invoke(inputs, 0)[1] or []        # batch 0: the inputs are one call, as given

    def benchmark(self, inputs: list[np.ndarray], warmup: int, runs: int) -> np.ndarray:
        samples, _ = self._invoke(inputs, 0, warmup, runs)
        return np.asarray(samples, dtype=np.float64)

    def __del__(self) -> None:
        try:
            self.transport.run(f"rm -rf {shlex.quote(self.remote_dir)}", "cleaning up")
        except Exception:
            pass
