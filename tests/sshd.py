"""A real OpenSSH server on 127.0.0.1 for device tests: throwaway host and user keys, a free port,
strict host-key checking through a known_hosts file the test writes."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass
class LocalSshd:
    port: int
    user_key: Path
    known_hosts: Path
    pid_file: Path

    def url(self, python: str, known_hosts: Path | None = None, port: int | None = None) -> str:
        return (f"ssh://root@127.0.0.1:{port or self.port}?identity={self.user_key}"
                f"&known_hosts={known_hosts or self.known_hosts}&python={python}")

    def stop(self) -> None:
        if self.pid_file.is_file():
            try:
                os.kill(int(self.pid_file.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(folder: Path, extra_config: tuple[str, ...] = ()) -> LocalSshd:
    folder.mkdir(parents=True, exist_ok=True)
    host_key, user_key = folder / "host_key", folder / "user_key"
    keygen(host_key)
    keygen(user_key)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        f"PidFile {folder / 'sshd.pid'}", "AcceptEnv no", *extra_config, ""]))
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    subprocess.run([SSHD, "-f", str(config), "-E", str(folder / "sshd.log")], check=True)
    host_pub = (folder / "host_key.pub").read_text().split()
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return LocalSshd(port, user_key, known, folder / "sshd.pid")
