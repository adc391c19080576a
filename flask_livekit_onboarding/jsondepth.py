"""How deeply a JSON text nests, found in time linear in its length and without parsing it.

Python's JSON parser recurses once per level, so a hostile depth is refused before it runs.
No Flask import: the envelope reader (which agents use) and the request bodies share it.
"""

from __future__ import annotations

import re
from itertools import accumulate

# Every string, escapes included, up to its closing quote or (unterminated) to the end of the
# text. The match can never fail after its opening quote, so the engine never backtracks and
# never rescans: each byte is read once whatever the input.
_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"?', re.S)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(document: bytes | str) -> int:
    """The deepest nesting of arrays and objects in ``document`` (a top-level object is 1).

    Brackets inside strings do not count; for text that is not JSON the result is still an
    upper bound of what a parser would descend before it gave up.
    """
    if isinstance(document, str):
        document = document.encode("utf-8", "surrogatepass")
    if document.count(b"[") + document.count(b"{") == 0:
        return 0
    shape = _STRING.sub(b"", document).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[byte] for byte in shape), default=0)


def too_deep(document: bytes | str, max_depth: int) -> bool:
    """Whether ``document`` nests deeper than ``max_depth``; cheap for ordinary documents."""
    if isinstance(document, str):
        document = document.encode("utf-8", "surrogatepass")
    if document.count(b"[") + document.count(b"{") <= max_depth:
        return False
    return nesting_depth(document) > max_depth
