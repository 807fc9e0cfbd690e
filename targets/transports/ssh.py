"""The ssh transport for Linux boards: push an artifact and a runner script, run it with the board's own
Python runtime, pull outputs and timings, clean up. Host keys are verified against a known_hosts file
(`StrictHostKeyChecking=yes`), never accepted blindly."""
from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import numpy as np

from edge_pipeline.errors import ConfigError, InputError, RunnerUnavailable
from edge_pipeline.plugins import Runner, Session, Transport
from edge_pipeline.tensors import Tensors

RUNNER_SCRIPT = Path(__file__).with_name("remote_runner.py")


@dataclass(frozen=True)
class SshDevice:
    user: str
    host: str
    port: int = 22
    identity: str | None = None
    known_hosts: str | None = None
    python: str = "python3"

    @classmethod
    def parse(cls, url: str) -> "SshDevice":
        """ssh://user@host[:port][?identity=KEY&known_hosts=FILE&python=PATH]"""
        parsed = urlparse(url)
        if parsed.scheme != "ssh" or not parsed.hostname or not parsed.username:
            raise ConfigError(f"--device '{url}' must look like ssh://user@host[:port]")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - {"identity", "known_hosts", "python"}
        if unknown:
            raise ConfigError(f"--device: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"valid: identity, known_hosts, python")
        return cls(parsed.username, parsed.hostname, parsed.port or 22, query.get("identity"),
                   query.get("known_hosts"), query.get("python", "python3"))

    @property
    def label(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"


class SshTransport:
    def __init__(self, device: SshDevice):
        self.device = device

    def _options(self) -> list[str]:
        d = self.device
        opts = ["-p", str(d.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        if d.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={d.known_hosts}"]
        if d.identity:
            opts += ["-i", d.identity, "-o", "IdentitiesOnly=yes"]
        return opts

    def run(self, command: str, what: str) -> str:
        """Runs a shell command on the device; a dropped connection is retried once."""
        return self._call(command, what).decode(errors="replace")

    def push(self, local: Path, remote: str) -> None:
        """Through the ssh channel itself (`cat > file`): boards without scp/sftp work too."""
        self._call(f"cat > {shlex.quote(remote)}", f"copying {local.name} to the device", local.read_bytes())

    def pull(self, remote: str, local: Path) -> None:
        local.write_bytes(self._call(f"cat {shlex.quote(remote)}", "copying results from the device"))

    def _call(self, command: str, what: str, stdin: bytes | None = None) -> bytes:
        argv = ["ssh", *self._options(), f"{self.device.user}@{self.device.host}", command]
        for attempt in (1, 2):
            proc = subprocess.run(argv, input=stdin if stdin is not None else b"", capture_output=True, timeout=600)
            if proc.returncode == 0:
                return proc.stdout
            message = proc.stderr.decode(errors="replace").strip()
            if "Host key verification failed" in message or "REMOTE HOST IDENTIFICATION HAS CHANGED" in message:
                raise RunnerUnavailable(f"{self.device.label}: host key verification failed: the device's key is "
                                        f"unknown or does not match known_hosts; refusing to connect")
            if proc.returncode != 255:   # the command ran and failed: not a transport problem
                detail = proc.stdout.decode(errors="replace") or message
                raise RunnerUnavailable(f"{self.device.label}: {what} failed: {_last(detail)}")
            if attempt == 2:
                raise RunnerUnavailable(f"{self.device.label}: cannot reach the device ({_last(message)}); "
                                        f"tried twice while {what}")
        raise AssertionError("unreachable")


def _last(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


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
        self.remote_dir = transport.run("mktemp -d /tmp/edgepipe.XXXXXX", "creating a work folder").strip()
        self.remote_artifact = f"{self.remote_dir}/{artifact.name}"
        transport.push(artifact, self.remote_artifact)
        transport.push(RUNNER_SCRIPT, f"{self.remote_dir}/remote_runner.py")
        arch = transport.run("uname -m; nproc", "reading the device's CPU").split()
        self.cores = int(arch[-1]) if arch and arch[-1].isdigit() else None   # what "all" threads means there
        self.device_label = f"device {transport.device.label} ({' '.join(arch[:1])}, {arch[-1] if arch else '?'} cores)"

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
