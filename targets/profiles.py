"""Built-in target profiles, as data. Each is registered under `edgepipe.targets` by name."""
from __future__ import annotations

from edge_pipeline.types import TEXT_GENERATION, OutputSpec, ProfileSettings, Target

PHONE_APP_MEMORY_MB = 512.0   # what one model may add to an app before low-end phones start killing it
BOARD_MEMORY_MB = 1024.0      # a 1 GB board (Raspberry Pi 3 class) with the OS and Python resident
# Language models on phones: ExecuTorch's LLM path, float and its 4-bit recipe (the runtime's own LLM runner)
PHONE_LANGUAGE_MODELS = ((TEXT_GENERATION, (OutputSpec("pte", "fp32"), OutputSpec("pte", "8da4w"))),)
# LiteRT's LLM path: a .litertlm bundle, float and int8 weights, run by LiteRT-LM's engine (Android, Linux)
LITERT_LANGUAGE_MODELS = (OutputSpec("tflite", "fp32"), OutputSpec("tflite", "int8-dynamic"))
# ONNX Runtime GenAI's path: its model builder's folder, float and int4 weights, run by its generator (boards)
GENAI_LANGUAGE_MODELS = (OutputSpec("onnx", "fp32"), OutputSpec("onnx", "int4"))
ANDROID_LANGUAGE_MODELS = ((TEXT_GENERATION, (*PHONE_LANGUAGE_MODELS[0][1], *LITERT_LANGUAGE_MODELS)),)

android = Target(
    name="android",
    description="Android phones: LiteRT (.tflite) and ExecuTorch (.pte, XNNPACK), fp32 and static int8",
    outputs=(OutputSpec("tflite", "fp32"), OutputSpec("tflite", "int8"),
             OutputSpec("pte", "fp32"), OutputSpec("pte", "int8")),
    profile=ProfileSettings(warmup=10, runs=100, threads=(1, 0), memory_mb=PHONE_APP_MEMORY_MB),
    device_class="phone",
    bundle="android",
    task_outputs=ANDROID_LANGUAGE_MODELS,
    task_bundles=((TEXT_GENERATION, "android-chat"),),
)

web = Target(
    name="web",
    description="Browsers: TF.js graph model (fp32 and uint8 weights), run with the wasm backend; demo page bundle",
    outputs=(OutputSpec("tfjs", "fp32"), OutputSpec("tfjs", "uint8")),
    profile=ProfileSettings(warmup=10, runs=100, threads=(1,)),
    device_class="browser",
    bundle="web",
    max_input_rank=4,
)

ios = Target(
    name="ios",
    description="iPhones: ExecuTorch (.pte, XNNPACK) fp32 and int8, and a Core ML .mlpackage (fp16) reported "
                "unvalidated: Core ML cannot run on Linux",
    outputs=(OutputSpec("pte", "fp32"), OutputSpec("pte", "int8"), OutputSpec("coreml", "fp16")),
    profile=ProfileSettings(warmup=10, runs=100, threads=(1, 0), memory_mb=PHONE_APP_MEMORY_MB),
    device_class="phone",
    bundle="ios",
    task_outputs=PHONE_LANGUAGE_MODELS,
)

linux_arm64 = Target(
    name="linux-arm64",
    description="Linux boards (Raspberry Pi class): LiteRT and ONNX Runtime, fp32 and int8",
    outputs=(OutputSpec("tflite", "fp32"), OutputSpec("tflite", "int8"),
             OutputSpec("onnx", "fp32"), OutputSpec("onnx", "int8")),
    profile=ProfileSettings(warmup=10, runs=100, threads=(1, 0), memory_mb=BOARD_MEMORY_MB),
    device_class="board",
    bundle="linux",
    task_outputs=((TEXT_GENERATION, (*LITERT_LANGUAGE_MODELS, *GENAI_LANGUAGE_MODELS)),),
    task_bundles=((TEXT_GENERATION, "linux-chat"),),
)

mcu = Target(
    name="mcu",
    description="Microcontrollers (TensorFlow Lite Micro): full-int8 .tflite as C source, within a flash budget",
    outputs=(OutputSpec("tflite", "int8"),),
    budgets={"max-size-kb": 256.0},
    profile=ProfileSettings(warmup=10, runs=100, threads=(1,)),
    device_class="microcontroller",
    bundle="mcu",
)

server = Target(
    name="server",
    description="A model server beside the edge apps, fp32: TF Serving's SavedModel layout (validated through its "
                "signature in TensorFlow; TF Serving itself is not run), and a TorchServe archive and a Ray Serve "
                "application (ONNX Runtime), each served for real on 127.0.0.1 and load-tested",
    outputs=(OutputSpec("tfserving", "fp32"), OutputSpec("torchserve", "fp32"), OutputSpec("rayserve", "fp32")),
    profile=ProfileSettings(warmup=10, runs=100, threads=(1,)),   # a server per thread count would start twice
    device_class="server",
    bundle="server",
)
