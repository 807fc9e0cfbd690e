"""A decoder to ExecuTorch `.pte` the way ExecuTorch's LLM path does it: a static KV cache inside the program
(transformers' `TorchExportableModuleForDecoderOnlyLM`), one `forward(input_ids, cache_position)` method whose
sequence length is dynamic (prefill takes a whole prompt, decode one token), lowered to XNNPACK, and the metadata
methods the ExecuTorch LLM runner reads (BOS/EOS ids, context length, vocabulary size).

Precisions: fp32, and 8da4w (int4 weights in groups, int8 dynamic activations, torchao) on every linear layer but
the output projection, which stays 8-bit weight-only: a 4-bit output projection is what broke the vendors'
default recipe on a real 135M model (perplexity +42%)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUP_SIZE = 32
Refine = Callable[[str, Any, Any], None]    # (layer name, its float weight, its torchao int4 weight) -> None


@dataclass(frozen=True)
class DecoderMetadata:
    """What the runner reads from the program; the EOS ids are the union of every place the source declares one."""

    max_context: int
    vocab_size: int
    bos_id: int
    eos_ids: tuple[int, ...]

    def methods(self) -> dict[str, Any]:
        return {"get_max_seq_len": self.max_context, "get_max_context_len": self.max_context,
                "get_vocab_size": self.vocab_size, "get_bos_id": self.bos_id, "get_eos_ids": list(self.eos_ids),
                "use_kv_cache": True, "enable_dynamic_shape": True, "use_sdpa_with_kv_cache": False}


def quantize_8da4w(model: Any, group_size: int = GROUP_SIZE, algorithm: str = "affine",
                   eight_bit: tuple[str, ...] = (), refine: Refine | None = None) -> list[str]:
    """In place: 8da4w on the decoder's linear layers, int8 weights on the output projection and on the layers
    whose names start with one of `eight_bit`; returns the layers left float (input width not a multiple of the
    group size). `algorithm`: how the int4 scales are chosen, torchao's "affine" (min-max) or "hqq_scale_only"
    (HQQ's scale search). `refine(name, float weight, quantized weight)` may then re-pick each int4 layer's
    integers on torchao's grid (its `qdata`), before the program is unwrapped. XNNPACK delegates groups of 32 and
    multiples only."""
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quantize_.workflows.intx.intx_choose_qparams_algorithm import (
        IntxChooseQParamsAlgorithm,
    )
    from torchao.utils import unwrap_tensor_subclass

    head = model.get_output_embeddings()
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head}
    wide = {n for n in linears if n.startswith(eight_bit)} if eight_bit else set()
    chosen = {n for n, m in linears.items() if m.in_features % group_size == 0 and n not in wide}
    originals = {n: linears[n].weight.detach().clone() for n in chosen} if refine else {}
    quantize_(model, Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int4, weight_granularity=PerGroup(group_size),
        intx_choose_qparams_algorithm=IntxChooseQParamsAlgorithm(algorithm)),
        filter_fn=lambda m, fqn: fqn in chosen)
    for name in sorted(originals):
        refine(name, originals[name], linears[name].weight)   # type: ignore[misc]
    quantize_(model, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0)),
              filter_fn=lambda m, fqn: m is head or fqn in wide)
    unwrap_tensor_subclass(model)
    return sorted(set(linears) - chosen - wide)


def export_decoder(model: Any, path: Path, metadata: DecoderMetadata) -> None:
    """Writes the `.pte`; `model` is a transformers causal LM (already quantized when it should be)."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from transformers.integrations.executorch import TorchExportableModuleForDecoderOnlyLM

    model.generation_config.cache_implementation = "static"
    wrapped = TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=metadata.max_context)
    ids = torch.zeros((1, 2), dtype=torch.long)
    length = torch.export.Dim("seq_len", min=1, max=metadata.max_context - 1)
    with torch.no_grad():
        program = wrapped.export(input_ids=ids, cache_position=torch.arange(2, dtype=torch.long),
                                 dynamic_shapes={"input_ids": {1: length}, "cache_position": {0: length}},
                                 strict=True)   # non-strict capture fails in ExecuTorch's decomposition
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                          compile_config=EdgeCompileConfig(_check_ir_validity=False),
                                          constant_methods=metadata.methods())
    path.write_bytes(lowered.to_executorch().buffer)
