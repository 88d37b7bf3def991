"""The tokens of a CEL expression, with their offsets.

The `cel` package parses and runs an expression but tells nothing about where a name
stands in it. This small lexer does, so a rule that names an unknown field can be refused
at the name's line and column, and so the few source rewrites of
models.rules.expression (number literals, list membership) touch tokens, never the text
inside a string or a comment. It is only used on text that `cel` has already parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENT, INT, NUMBER, STRING, PUNCT = "ident", "int", "number", "string", "punct"

# CEL's number literals (CEL spec, "Syntax"): floats, hex and unsigned integers are
# NUMBER; a plain decimal integer is INT (rewritten to a double in rules).
_FLOAT = r"\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(
    rf"(?P<float>{_FLOAT})|(?P<hex>0[xX][0-9a-fA-F]+[uU]?)|(?P<int>\d+)(?P<u>[uU])?"
)
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
# Operators of two characters, so "&&" or "==" is one token.
_PAIRS = ("&&", "||", "==", "!=", "<=", ">=")
_STRING_PREFIX = re.compile(r"(?:[rR][bB]?|[bB][rR]?)?(?='|\")")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int  # offset of the first character in the source

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def tokens(source: str) -> list[Token]:
    """Every token of `source` (whitespace and // comments left out)."""
    out: list[Token] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char.isspace():
            i += 1
        elif source.startswith("//", i):
            newline = source.find("\n", i)
            i = len(source) if newline < 0 else newline + 1
        elif (prefix := _STRING_PREFIX.match(source, i)) is not None:
            end = _string_end(source, prefix.end(), raw="r" in prefix.group().lower())
            out.append(Token(STRING, source[i:end], i))
            i = end
        elif char.isdigit() or (char == "." and source[i + 1 : i + 2].isdigit()):
            match = _NUMBER.match(source, i)
            assert match is not None  # a digit always starts a number
            kind = INT if match.group("int") and not match.group("u") else NUMBER
            out.append(Token(kind, match.group(), i))
            i = match.end()
        elif (ident := _IDENT.match(source, i)) is not None:
            out.append(Token(IDENT, ident.group(), i))
            i = ident.end()
        else:
            width = 2 if source[i : i + 2] in _PAIRS else 1
            out.append(Token(PUNCT, source[i : i + width], i))
            i += width
    return out


def _string_end(source: str, i: int, raw: bool) -> int:
    """The offset just past the string literal whose quote starts at `i`."""
    quote = source[i : i + 3] if source[i : i + 3] in ('"""', "'''") else source[i]
    j = i + len(quote)
    while j < len(source):
        if not raw and source[j] == "\\":
            j += 2
            continue
        if source.startswith(quote, j):
            return j + len(quote)
        j += 1
    return len(source)


def line_column(source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of an offset."""
    before = source[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1
