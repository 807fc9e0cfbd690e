"""Runs `.pte` programs in the ExecuTorch runtime that ships in the executorch wheel."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError

from .torch_session import TorchTensorSession


class ExecutorchRunner:
    name: ClassVar[str] = "executorch"
    runtime: ClassVar[str] = "ExecuTorch runtime"
    distribution: ClassVar[str] = "executorch"
    suffixes: ClassVar[dict[str, str]] = {".pte": "pte"}

    def open(self, path: Path, threads: int) -> TorchTensorSession:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(threads)   # XNNPACK's pool; must precede loading
        try:
            method = Runtime.get().load_program(str(path)).load_method("forward")
        except Exception as exc:
            raise InputError(f"{path} is not a loadable ExecuTorch program: {exc}") from exc
        meta = method.metadata
        shapes = [list(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        return TorchTensorSession(method.execute, shapes)
