"""Text an upstream sent, made safe to show: secrets masked, controls made visible, cut short."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, cast

from .._redact import Redactor

__all__ = ["excerpt", "printable", "secret_masker"]


def secret_masker(*sources: object, extra: Iterable[str] = ()) -> Callable[[str], str]:
    """A function that masks (``***``) every secret of ``sources`` in a text.

    The secrets are every :class:`~healthkit.Secret` and the credentials of every
    :class:`~healthkit.SecretUrl` in ``sources`` (configs are walked field by
    field, mappings and sequences item by item) and each string of ``extra``;
    each is matched in every form a library message or an echoing upstream may
    show it: as it is, stripped, repr-escaped, percent-encoded, and the credential
    of ``Bearer <token>`` alone. Values shorter than four characters are left
    alone (masking them would garble ordinary words). Pass it as
    ``ResultBuilder(name, scrub=...)``, or apply it to upstream text before
    cutting an excerpt of it (a cut through a secret would show its first part).
    """
    return Redactor(cast(Any, sources), extra=extra)


#: Unicode's pictures of the C0 controls and DEL: visible, and inert in a terminal.
_PICTURES = {code: chr(0x2400 + code) for code in range(32)} | {0x7F: "\u2421"}


def printable(text: str | bytes, *, keep: str = "") -> str:
    """``text`` made safe to print in a terminal, a log line or a table.

    Bytes are decoded as UTF-8 (what does not decode becomes U+FFFD). Control
    characters become their Unicode pictures (NUL ``␀``, ESC ``␛``, CR ``␍``,
    LF ``␊``, DEL ``␡``), except those in ``keep`` (say ``"\\n\\t"`` for
    multi-line output); other invisible or formatting characters (C1
    controls, bidirectional overrides, zero-width ones) become U+FFFD and
    other spaces a plain space. Never a bytes repr, never an escape sequence.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    out = []
    for ch in text:
        code = ord(ch)
        if ch in keep:
            out.append(ch)
        elif code in _PICTURES:
            out.append(_PICTURES[code])
        elif ch.isprintable():
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            out.append("\ufffd")
    return "".join(out)


def excerpt(text: str | bytes, limit: int = 80, *, tail: bool = False, keep: str = "") -> str:
    """A :func:`printable` excerpt of ``text``, at most ``limit`` characters.

    A longer text is cut with ``…``: its first ``limit - 1`` characters, or with
    ``tail`` its last ones (where a command's error usually is). Mask secrets
    before (see :func:`secret_masker`): a cut through one would show a part.
    """
    shown = printable(text, keep=keep)
    if len(shown) <= limit:
        return shown
    if tail:
        return "…" + shown[len(shown) - limit + 1 :]
    return shown[: limit - 1] + "…"
