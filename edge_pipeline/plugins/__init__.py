"""The plugin kinds, one base class each: its annotated class members are the contract (checked when a plugin
loads, `edge_pipeline.registry`), its methods with a body are the optional members' real defaults.

Built-ins in `quantization/` and `targets/` subclass these exactly as a third party's `edgepipe-foo` would, and
register through the same entry points."""
from edge_pipeline.plugins.bundler import Bundler
from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.plugins.exporter import Exporter, OnnxExporter, copy_step
from edge_pipeline.plugins.model import DataBundle, Model, OwnData, PluginConfig, QuantizeSettings
from edge_pipeline.plugins.recipe import (
    Carrier,
    Recipe,
    RecipeStep,
    Ship,
    ShippedRun,
    StepKind,
    Work,
    file_step,
    model_step,
    write_step,
)
from edge_pipeline.plugins.runner import DecoderSession, GraphView, GreedyRun, LoopRun, Runner, Session
from edge_pipeline.plugins.source import BatchCall, Source
from edge_pipeline.plugins.transform import ArtifactTransform, Bridge, ModelTransform, Pruner, Transform
from edge_pipeline.plugins.transport import Transport

__all__ = ["ArtifactTransform", "BatchCall", "Bridge", "Bundler", "Carrier", "DataBundle", "DecoderSession", "Exporter",
           "GraphView", "GreedyRun", "LoopRun", "Model", "ModelTransform",
           "OnnxExporter", "OwnData",
           "Plugin", "PluginConfig", "Pruner", "QuantizeSettings", "Recipe", "RecipeStep", "Runner",
           "Session", "Ship", "ShippedRun", "Source", "StepKind", "Transform", "Transport", "Work", "copy_step",
           "file_step", "model_step", "write_step"]
