"""A gate check and the text enums the report's verdicts use: what `edgepipe gate` prints, JUnit lists and
report.json's `checks` hold."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import ClassVar

from edge_pipeline.report.strict import JsonMap, read_fields
from edge_pipeline.types import JsonObject


class TextEnum(str, Enum):
    """An enum whose members read as their value wherever text is made (f-strings, tables, JSON)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class CheckKind(TextEnum):
    """What a check compares: an absolute budget, a baseline, the build's own completeness; or skipped, with why."""

    BUDGET = "budget"
    BASELINE = "baseline"
    STATUS = "status"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One gate check: which artifact, which metric, the limit, the value and the verdict in words."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("artifact", "metric", "limit", "passed", "message")
    artifact: str
    metric: str
    limit: float
    value: float | None
    passed: bool
    message: str
    kind: CheckKind = CheckKind.BUDGET

    def to_dict(self) -> JsonObject:
        return {**asdict(self), "kind": str(self.kind)}

    to_json = to_dict

    @classmethod
    def from_json(cls, data: JsonMap, path: str = "check") -> "Check":
        names = [f.name for f in fields(cls)]
        values = read_fields(cls, data, path, names, cls.REQUIRED, {})
        return cls(**{"value": None, **values})   # type: ignore[arg-type]
