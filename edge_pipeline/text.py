"""Text from users and libraries, made safe for where it goes: terminal escape sequences and control bytes are
dropped (a converter's coloured log must not recolour a terminal, and XML 1.0 cannot hold them), everything else
is kept whole. Rich markup is escaped where text is printed (cli/render.py), not here."""
from __future__ import annotations

import re

# CSI and OSC sequences (colours, cursor moves, hyperlinks, titles), then lone C0 controls and DEL, but not
# tab and newline: a multi-line message stays multi-line in the report and the log.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def printable(text: object) -> str:
    """`text` without terminal escape sequences, control bytes or code points XML 1.0 refuses."""
    return _NOT_XML.sub("\ufffd", _ESCAPES.sub("", str(text)))
