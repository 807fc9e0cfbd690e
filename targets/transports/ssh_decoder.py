"""A language-model `.pte` folder stepped on an ssh board. The program runner edgepipe steps it with on this host
(targets/llm/pte_program.py, with the shared greedy loop) is pushed beside the program and left running in one
ssh session, answering one request per line; every time (time to first token, each decode step) is taken on the
board around the runtime calls, so no network time is in a figure."""
from __future__ import annotations

import base64
import json
import shlex
import subprocess
import tempfile
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


class RemoteDecoderSession(DecoderSession):
    """`runtime_loop` None: ExecuTorch's TextLLMRunner is not driven on a board, so tier 3 and the decode rate
    come from stepping there (the report says "decode by stepping")."""

    @classmethod
    def open(cls, transport: SshTransport, folder: Path, threads: int) -> DecoderSession:
        if not (folder / PROGRAM).is_file():
            raise RunnerUnavailable(f"{folder.name}: on an ssh board edgepipe steps ExecuTorch language models "
                                    f"(.pte) only; LiteRT-LM and ONNX Runtime GenAI folders are measured on this host")
        program = program_in(folder, PROGRAM)
        return check_declared_eos(folder, program, cls(transport, program, threads))

    def __init__(self, transport: SshTransport, program: Path, threads: int) -> None:
        self.transport = transport
        self.board = BoardFolder.create(transport)
        self.cores, self.device_label = self.board.cores, self.board.label
        transport.push(program, f"{self.board.path}/{PROGRAM}")
        for script in PUSHED:
            transport.push(script, f"{self.board.path}/{script.name}")
        python = shlex.quote(transport.device.python)
        self.errors = tempfile.TemporaryFile(mode="w+")      # a file, not a pipe: a chatty runtime cannot block it
        self.process = subprocess.Popen(
            transport.argv(f"cd {self.board.path} && {python} {PUSHED[0].name} {PROGRAM} --threads {int(threads)}"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True, bufsize=1)
        header = self._reply()
        self.eos_ids = tuple(int(t) for t in header["eos_ids"])
        self.max_context = int(header["max_context"])
        self.load_ms = float(header["load_ms"])
        self.runtime_label = f"{header['runtime']} {header['version']} on {self.board.label}"

    def logits(self, ids: np.ndarray) -> np.ndarray:
        reply = self._ask({"op": "logits", "ids": [int(t) for t in ids]})
        values = np.frombuffer(base64.b64decode(reply["logits"]), np.float32)
        shape = tuple(int(n) for n in reply["shape"])
        if len(shape) != 2 or shape[0] != len(ids) or int(np.prod(shape)) != values.size:
            raise RunnerUnavailable(f"{self.transport.device.label}: logits of shape {shape} for {len(ids)} tokens")
        return values.reshape(shape)

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
        reply = self._ask({"op": "greedy", "prompt": [int(t) for t in prompt], "new_tokens": int(new_tokens)})
        return GreedyRun(tuple(int(t) for t in reply["tokens"]), float(reply["first_token_s"]),
                         tuple(float(s) for s in reply["decode_s"]))

    def close(self) -> None:
        """Ends the program runner (its stdin closes) and removes the board's work folder."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.errors.close()
        try:
            self.transport.run(f"rm -rf {shlex.quote(self.board.path)}", "cleaning up")
        except RunnerUnavailable:
            pass

    def _ask(self, request: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass       # the runner has gone: _reply says why
        return self._reply()

    def _reply(self) -> dict:
        """The runner's next JSON line (anything else the runtime prints is skipped)."""
        label = self.transport.device.label
        while line := self.process.stdout.readline(MAX_REPLY_CHARS):
            if line.startswith("{"):
                reply = json.loads(line)
                if "error" in reply:
                    raise RunnerUnavailable(f"{label}: {str(reply['error'])[:300]}")
                return reply
        self.process.wait(timeout=30)
        self.errors.seek(0)
        lines = [ln for ln in self.errors.read().splitlines() if ln.strip()]
        raise RunnerUnavailable(f"{label}: the program runner stopped (exit {self.process.returncode}): "
                                f"{lines[-1][:300] if lines else 'no output'}")
