"""A language-model `.pte` folder stepped on an ssh board. The program runner edgepipe steps it with on this host
(targets/llm/pte_program.py, with the shared greedy loop) is pushed beside the program and left running in one
ssh session, answering one request per line; every time (time to first token, each decode step) is taken on the
board around the runtime calls, so no network time is in a figure."""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_pipeline.errors import RunnerUnavailable
from edge_pipeline.plugins import DecoderSession, GreedyRun
from targets.exporters.pte_decoder import PROGRAM
from targets.llm import greedy, pte_program
from targets.runners.decoder_folder import check_declared_eos, program_in
from targets.transports.ssh_channel import BoardFolder, SshTransport

PUSHED = (Path(pte_program.__file__), Path(greedy.__file__))
MAX_REPLY_CHARS = 512 << 20      # one window's logits, base64: far under this for any model that fits a board
ERROR_TAIL = 64 << 10            # what is read of the runner's stderr to name why it stopped


class RemoteDecoderSession(DecoderSession):
    """`runtime_loop` None: ExecuTorch's TextLLMRunner is not driven on a board, so tier 3 and the decode rate
    come from stepping there (the report says "decode by stepping")."""

    @classmethod
    def open(cls, transport: SshTransport, folder: Path, threads: int) -> DecoderSession:
        if not (folder / PROGRAM).is_file():
            raise RunnerUnavailable(f"{folder.name}: on an ssh board edgepipe steps ExecuTorch language models "
                                    f"(.pte) only; LiteRT-LM and ONNX Runtime GenAI folders are measured on this host")
        program = program_in(folder, PROGRAM)
        session = cls(transport, program, threads)
        try:
            return check_declared_eos(folder, program, session)
        except BaseException:
            session.close()
            raise

    def __init__(self, transport: SshTransport, program: Path, threads: int) -> None:
        self.transport, self.process, self.errors = transport, None, None
        self.board = BoardFolder.create(transport)
        try:
            self._start(program, threads)
        except BaseException:        # nothing of a half-opened session stays on the board or here
            self.close()
            raise

    def _start(self, program: Path, threads: int) -> None:
        board = self.board
        self.cores, self.device_label = board.cores, board.label
        threads = min(threads, board.cores) if board.cores else threads      # "all" means the board's cores
        self.transport.push(program, f"{board.path}/{PROGRAM}")
        for script in PUSHED:
            self.transport.push(script, f"{board.path}/{script.name}")
        python = shlex.quote(self.transport.device.python)
        self.errors = tempfile.TemporaryFile(mode="w+")      # a file, not a pipe: a chatty runtime cannot block it
        self.process = subprocess.Popen(
            self.transport.argv(f"cd {shlex.quote(board.path)} && {python} {PUSHED[0].name} {PROGRAM} "
                                f"--threads {int(threads)}"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True, bufsize=1)
        header = self._reply()
        with self._malformed("header"):
            self.eos_ids = tuple(int(t) for t in header["eos_ids"])
            self.max_context = int(header["max_context"])
            self.load_ms = _finite(header["load_ms"])
            self.runtime_version = str(header["version"])

    def logits(self, ids: np.ndarray) -> np.ndarray:
        reply = self._ask({"op": "logits", "ids": [int(t) for t in ids]})
        with self._malformed("logits"):
            values = np.frombuffer(base64.b64decode(reply["logits"], validate=True), np.float32)
            shape = tuple(int(n) for n in reply["shape"])
        if len(shape) != 2 or shape[0] != len(ids) or int(np.prod(shape)) != values.size:
            raise RunnerUnavailable(f"{self.transport.device.label}: logits of shape {shape} for {len(ids)} tokens")
        return values.reshape(shape)     # non-finite values are the artifact's: tier 2 refuses them, named

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
        reply = self._ask({"op": "greedy", "prompt": [int(t) for t in prompt], "new_tokens": int(new_tokens)})
        with self._malformed("greedy"):
            tokens = tuple(int(t) for t in reply["tokens"])
            if any(t < 0 for t in tokens) or len(tokens) > new_tokens:
                raise ValueError(f"tokens {list(tokens)[:8]}")
            return GreedyRun(tokens, _finite(reply["first_token_s"]),
                             tuple(_finite(s) for s in reply["decode_s"]))

    def close(self) -> None:
        """Ends the program runner (its stdin closes) and removes the board's work folder; never raises, so the
        error that ended a measurement is the one reported."""
        process = self.process
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with contextlib.suppress(OSError):
                process.stdout.close()
        if self.errors is not None:
            self.errors.close()
        with contextlib.suppress(Exception):
            self.transport.run(f"rm -rf {shlex.quote(self.board.path)}", "cleaning up")

    @contextlib.contextmanager
    def _malformed(self, what: str) -> Iterator[None]:
        """A reply that does not hold what the protocol promises is the board's runner failing, said in one line."""
        try:
            yield
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise RunnerUnavailable(f"{self.transport.device.label}: a malformed {what} reply from the program "
                                    f"runner ({type(exc).__name__}: {str(exc)[:120]})") from None

    def _ask(self, request: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass       # the runner has gone: _reply says why
        return self._reply()

    def _reply(self) -> dict:
        """The runner's next JSON object line (anything else the runtime prints is skipped)."""
        label = self.transport.device.label
        while line := self.process.stdout.readline(MAX_REPLY_CHARS):
            if line.startswith("{"):
                with self._malformed("JSON"):
                    reply = json.loads(line, parse_constant=_no_constant)
                    if not isinstance(reply, dict):
                        raise TypeError("not an object")
                if "error" in reply:
                    raise RunnerUnavailable(f"{label}: {str(reply['error'])[:300]}")
                return reply
        self.process.wait(timeout=30)
        self.errors.seek(0, 2)
        self.errors.seek(max(0, self.errors.tell() - ERROR_TAIL))
        lines = [ln for ln in self.errors.read().splitlines() if ln.strip()]
        raise RunnerUnavailable(f"{label}: the program runner stopped (exit {self.process.returncode}): "
                                f"{lines[-1][:300] if lines else 'no output'}")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} in a reply")


def _finite(value: object) -> float:
    """A time from the board: a finite number of seconds or milliseconds, not negative."""
    number = float(value)   # type: ignore[arg-type]
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"time {number}")
    return number
