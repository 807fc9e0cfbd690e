"""The report: typed data (model.py), the one builder (builder.py), its views (markdown, html, junit) and the
readers of reports on disk (gating, baseline, check)."""
from __future__ import annotations

from edge_pipeline.report.model import (
    SCHEMA_VERSION,
    ArtifactReport,
    Check,
    Latency,
    OutputValidation,
    Report,
    SourceReport,
    Validation,
)

__all__ = ["SCHEMA_VERSION", "ArtifactReport", "Check", "Latency", "OutputValidation", "Report", "SourceReport",
           "Validation"]
