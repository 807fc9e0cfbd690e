"""The ssh channel to a Linux board: the device URL, commands run there (a dropped connection retried once),
files pushed and pulled through the channel itself, a work folder. Host keys are verified against a known_hosts
file (`StrictHostKeyChecking=yes`), never accepted blindly."""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from edge_pipeline.errors import ConfigError, RunnerUnavailable


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

    def argv(self, command: str) -> list[str]:
        """The ssh command line that runs `command` on the device (a caller may keep it running)."""
        return ["ssh", *self._options(), f"{self.device.user}@{self.device.host}", command]

    def _call(self, command: str, what: str, stdin: bytes | None = None) -> bytes:
        argv = self.argv(command)
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
                raise RunnerUnavailable(f"{self.device.label}: {what} failed: {last_line(detail)}")
            if attempt == 2:
                raise RunnerUnavailable(f"{self.device.label}: cannot reach the device ({last_line(message)}); "
                                        f"tried twice while {what}")
        raise AssertionError("unreachable")


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


@dataclass(frozen=True)
class BoardFolder:
    """A work folder on the board, and the board as a report names it."""

    path: str
    cores: int | None      # what "all" threads means there
    label: str

    @classmethod
    def create(cls, transport: SshTransport) -> BoardFolder:
        path = transport.run("mktemp -d /tmp/edgepipe.XXXXXX", "creating a work folder").strip()
        arch = transport.run("uname -m; nproc", "reading the device's CPU").split()
        cores = int(arch[-1]) if arch and arch[-1].isdigit() else None
        return cls(path, cores, f"device {transport.device.label} ({' '.join(arch[:1])}, "
                                f"{arch[-1] if arch else '?'} cores)")


