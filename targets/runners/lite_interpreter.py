"""Runs `.ptl` files in PyTorch Mobile's lite interpreter (the same runtime the mobile library embeds)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Runner

from .torch_session import TorchTensorSession


class LiteInterpreterRunner(Runner):
    name: ClassVar[str] = "lite-interpreter"
    runtime: ClassVar[str] = "PyTorch lite interpreter"
    distribution: ClassVar[str] = "torch"
    suffixes: ClassVar[dict[str, str]] = {".ptl": "ptl"}

    def preload(self) -> None:
        import torch  # noqa: F401

    def open(self, path: Path, threads: int, variant: str | None = None) -> TorchTensorSession:
        import torch
        from torch.jit.mobile import _load_for_lite_interpreter

        torch.set_num_threads(threads)
        try:
            module = _load_for_lite_interpreter(str(path))
        except Exception as exc:
            raise InputError(f"{path} is not a loadable lite-interpreter model: {exc}") from exc
        return TorchTensorSession(lambda xs: module(*xs))
