"""Precision: the one list of numeric precisions edgepipe knows, each owning its validation tolerances and its
place in the `edgepipe tune` search space.

A precision used to be a bare string checked against three lists that drifted apart (only validation knew
uint8, and an unknown name silently got int8's tolerances). Now a name is parsed once, where targets and
`[validation.<precision>]` tables are read, and an unknown one is a ConfigError listing the valid names.
Imports nothing heavy: config parsing uses it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from edge_pipeline.errors import ConfigError

THRESHOLD_KEYS = ("min-sqnr-db", "min-agreement", "max-accuracy-drop",      # `[validation.<precision>]` keys
                  "min-token-agreement", "max-ppl-increase-pct")


@dataclass(frozen=True)
class Thresholds:
    """What a precision must meet; overridable per precision in `[validation.<precision>]`."""

    min_sqnr_db: float          # every output (float precisions; quantized ones without labels)
    min_agreement: float        # classification outputs (float precisions; quantized ones without labels)
    max_accuracy_drop: float    # percentage points, when labels exist (the target's budget wins)
    exact: bool = False         # a float conversion: SQNR and agreement apply even with labels
    accuracy_budget_from: str = "precision default"   # or "target budget" (a target's max-accuracy-drop)
    # Language models (text-generation): teacher-forced next-token top-1 agreement with the source, and the
    # perplexity increase on the evaluation text, in percent. A float artifact (`exact`) must also continue
    # every prompt greedily with the source's very tokens.
    min_token_agreement: float = 0.90
    max_ppl_increase_pct: float = 5.0


@dataclass(frozen=True, order=True)
class Precision:
    """One precision: its name, default validation thresholds, and whether `edgepipe tune` searches it (the
    search order is the order of `ALL`)."""

    name: str
    thresholds: Thresholds
    searched: bool = True       # part of the tune search space
    buildable: bool = True      # an output may ask for it (False: only describes an artifact profiled as given)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def all(cls) -> tuple["Precision", ...]:
        return ALL

    @classmethod
    def names(cls, *, buildable: bool = False) -> tuple[str, ...]:
        """Every known name (only those an output may ask for, with `buildable`), in declaration order."""
        return tuple(p.name for p in ALL if p.buildable or not buildable)

    @classmethod
    def searched_space(cls) -> tuple["Precision", ...]:
        """The precisions `edgepipe tune` tries, in the order it lists them."""
        return tuple(p for p in ALL if p.searched)

    @classmethod
    def parse(cls, name: str, where: str | None = None, *, buildable: bool = False) -> "Precision":
        """The Precision called `name`; an unknown name is a one-line ConfigError (prefixed by `where`, a TOML
        path or an output label) that lists the valid names. `buildable`: refuse names no output can ask for."""
        found = _BY_NAME.get(name)
        if found is not None and (found.buildable or not buildable):
            return found
        valid = cls.names(buildable=buildable)
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown precision {str(name)!r}. Valid: {', '.join(valid)}.{hint}")


_INT8 = Thresholds(min_sqnr_db=10.0, min_agreement=0.90, max_accuracy_drop=2.0)
# int8 per-channel weights with float (or on-the-fly int8) activations: a language model's perplexity moves by
# well under 1% with them (LLM.int8, LiteRT's own LLM default), so 0.95 / +2% leaves room for noise, not damage.
_INT8_WEIGHTS = replace(_INT8, min_token_agreement=0.95, max_ppl_increase_pct=2.0)

ALL: tuple[Precision, ...] = (
    Precision("fp32", Thresholds(min_sqnr_db=40.0, min_agreement=0.99, max_accuracy_drop=0.5, exact=True,
                                 min_token_agreement=0.99, max_ppl_increase_pct=0.5)),
    Precision("fp16", Thresholds(min_sqnr_db=25.0, min_agreement=0.98, max_accuracy_drop=1.0, exact=True,
                                 min_token_agreement=0.97, max_ppl_increase_pct=2.0)),
    Precision("int8", _INT8),
    Precision("int8-dynamic", _INT8_WEIGHTS),
    Precision("int8-weight", _INT8_WEIGHTS),
    Precision("int16x8", replace(_INT8, min_sqnr_db=15.0, min_agreement=0.95, max_accuracy_drop=1.0)),
    # int8 with int16 activations where an accuracy budget needs them, judged as int8; not in the tune search
    Precision("int8-mixed", _INT8, searched=False),
    # A language model's int4 weights (ONNX Runtime GenAI's builder) are judged like 8da4w's, below
    Precision("int4", Thresholds(min_sqnr_db=6.0, min_agreement=0.80, max_accuracy_drop=5.0,
                                 min_token_agreement=0.85, max_ppl_increase_pct=10.0)),
    # A decoder's int4 weights (groups of 32) with int8 dynamic activations, as ExecuTorch's LLM path names it.
    # 0.85 agreement / +10% perplexity: what separates a usable 4-bit model from the broken vendor default
    # measured on a 135M model (+42%, 53% agreement); the figures published for good 4-bit recipes sit inside.
    Precision("8da4w", Thresholds(min_sqnr_db=6.0, min_agreement=0.80, max_accuracy_drop=5.0,
                                  min_token_agreement=0.85, max_ppl_increase_pct=10.0), searched=False),
    Precision("uint8", _INT8, searched=False),            # TF.js weight storage; not in the tune search
    Precision("as-built", _INT8, searched=False, buildable=False),   # `edgepipe profile` of a given artifact
)
_BY_NAME: dict[str, Precision] = {p.name: p for p in ALL}
