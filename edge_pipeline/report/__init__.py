"""The report: typed data (model.py), its views (markdown, html, junit) and the readers of reports on disk (gating,
baseline, check). The one builder of a report is edge_pipeline/building/report_builder.py."""
from __future__ import annotations

from edge_pipeline.report.model import (
    SCHEMA_VERSION,
    ArtifactReport,
    Check,
    Latency,
    OutputValidation,
    Report,
    SourceReport,
    TensorReport,
    Validation,
)

__all__ = ["SCHEMA_VERSION", "ArtifactReport", "Check", "Latency", "OutputValidation", "Report", "SourceReport",
           "TensorReport", "Validation"]
