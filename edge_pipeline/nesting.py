"""Model arguments given as a tuple or dict of tensors (an LSTM's `(h, c)` state), as flat named tensors.

Exporters, runtimes and the data files take one tensor per input, so a nested argument is flattened once, where
the user's data is read, with the names outputs already get (`tensors.flatten_outputs`): the tuple argument
`state = (h, c)` becomes the inputs `state_0` and `state_1`, a dict argument `state = {"h": .., "c": ..}`
becomes `state.h` and `state.c`. A source whose model takes the nested argument (a PyTorch `forward(x, state)`)
rebuilds it from those names (`argument_groups`). One level of nesting; deeper is refused by name.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_pipeline.errors import InputError


@dataclass(frozen=True)
class ArgumentGroup:
    """One model argument and the flat inputs it is made of: `parts` is None for a plain tensor argument;
    `keys` holds a dict argument's keys (None for a tuple)."""

    name: str
    parts: tuple[str, ...] | None = None
    keys: tuple[str, ...] | None = None


def _nested(item: object) -> bool:
    return isinstance(item, (tuple, list, Mapping))


def flatten_arguments(value: object, declared: Sequence[str] | None, what: str) -> object:
    """The user's inputs with every tuple or dict argument replaced by its flat named parts; unchanged when
    nothing is nested. A top-level tuple is named by `declared` (or `input_i`) before it is flattened; with
    `declared` None it becomes the tuple of its tensors in order (a batch read by position)."""
    if isinstance(value, Mapping):
        if not any(_nested(item) for item in value.values()):
            return value
        items = [(str(k), item) for k, item in value.items()]
    elif isinstance(value, (tuple, list)) and any(_nested(item) for item in value):
        names = list(declared[:len(value)]) if declared is not None and len(declared) >= len(value) else \
            [f"input_{i}" for i in range(len(value))]
        items = list(zip(names, value))
    else:
        return value
    flat: dict[str, object] = {}
    for name, item in items:
        if isinstance(item, Mapping):
            parts = [(f"{name}.{key}", part) for key, part in item.items()]
        elif isinstance(item, (tuple, list)):
            parts = [(f"{name}_{i}", part) for i, part in enumerate(item)]
        else:
            parts = [(name, item)]
        for part_name, part in parts:
            if _nested(part):
                raise InputError(f"{what}: input '{part_name}' nests a further tuple or dict; edgepipe takes one "
                                 f"level (a tuple or dict of tensors per argument)")
            if part_name in flat:
                raise InputError(f"{what}: two inputs flatten to the name '{part_name}'")
            flat[part_name] = part
    return flat if declared is not None or isinstance(value, Mapping) else tuple(flat.values())


def argument_groups(declared: Sequence[str], flat: Sequence[str]) -> tuple[ArgumentGroup, ...]:
    """The model's arguments (`declared`, in order) as groups of `flat` input names. An argument that is not a
    flat name itself is the tuple `name_0, name_1, ...` or the dict `name.key, ...` found among them."""
    groups = []
    for name in declared:
        if name in flat:
            groups.append(ArgumentGroup(name))
            continue
        indexed = sorted((int(n[len(name) + 1:]), n) for n in flat
                         if n.startswith(f"{name}_") and n[len(name) + 1:].isdigit())
        keyed = [n for n in flat if n.startswith(f"{name}.")]
        if indexed and [i for i, _ in indexed] == list(range(len(indexed))):
            groups.append(ArgumentGroup(name, tuple(n for _, n in indexed)))
        elif keyed:
            groups.append(ArgumentGroup(name, tuple(keyed), tuple(n[len(name) + 1:] for n in keyed)))
        else:
            break   # a missing argument: the inputs up to here are what the data gives (defaults follow)
    return tuple(groups)


def nested_order(declared: Sequence[str], flat: Sequence[str]) -> list[str]:
    """`declared` with each tuple or dict argument replaced by its flat parts: the flat inputs' model order."""
    order: list[str] = []
    for group in argument_groups(declared, flat):
        order += list(group.parts) if group.parts is not None else [group.name]
    return order
