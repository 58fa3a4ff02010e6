"""Detokenizers applied to a corpus's documents before tokenization (``--detokenizer NAME``).

``wikitext`` undoes WikiText's tokenized spelling (`` @-@ ``, `` @,@ ``, spaces before
punctuation, spaced brackets and quotes, ``= = =`` headings) the way lm-evaluation-harness's
``wikitext`` task does before scoring, step for step and in the same order, so its numbers
compare with the harness's. One quirk is reproduced on purpose: the harness replaces
``/' <digit>/`` by the literal text ``/'[0-9]/``. tests/test_harness.py checks the result
against the harness's own function on random WikiText-like text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# (old, new) literal replacements, applied in this order, before and after the bracket pass.
_SEPARATORS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_PUNCTUATION = tuple((f" {p} ", f"{p} ") for p in ":;.!?,")
_AFTER = (("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" \u00b0 ", "\u00b0"),
          (" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s"))
_DIGIT_QUIRK = re.compile(r"/' [0-9]/")


def _bracket(open_: str, close: str) -> re.Pattern:
    """``open  inner  close`` -> ``open inner close`` with the white space at both ends of the
    (shortest) inner text removed; the inner text holds no ``close``."""
    o, c = re.escape(open_), re.escape(close)
    return re.compile(rf"{o}\s*([^{c}]*?)\s*{c}")


_BRACKETS = tuple((_bracket(o, c), o, c) for o, c in (("(", ")"), ("[", "]"), ("{", "}"), ('"', '"'), ("'", "'")))


def _replace_all(text: str, pairs) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def wikitext(text: str) -> str:
    """lm-evaluation-harness's wikitext detokenization of one document."""
    text = text.replace("s '", "s'")
    text = _DIGIT_QUIRK.sub("/'[0-9]/", text)
    text = _replace_all(text, _SEPARATORS + _PUNCTUATION)
    for pattern, o, c in _BRACKETS:
        text = pattern.sub(lambda m, o=o, c=c: f"{o}{m.group(1)}{c}", text)
    return _replace_all(text, _AFTER)


DETOKENIZERS: dict[str, Callable[[str], str]] = {"wikitext": wikitext}
