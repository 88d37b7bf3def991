"""A rule's condition: a Common Expression Language (CEL) expression, compiled once,
checked against the names a rule may use, and run on one transaction at a time.

Compiling refuses, with the line and column and the reason:

- text that does not parse (CEL's own message and position);
- a name that is not a field, feature or list of the config (models.rules.vocabulary),
  with the closest known names;
- a list used other than as ``<name> in lists.<list>``;
- a type error or a result other than true/false on a sample transaction.

Two rewrites make the compiled program fit the data; the rule keeps the text as written:

- every whole-number literal becomes a double (``5`` -> ``5.0``): the values are doubles
  and CEL does not mix int and double in arithmetic (``5 * card_amount_mean_30d`` would
  fail on every transaction otherwise);
- ``card in lists.vip_cards`` becomes a true/false variable computed in Python from a set,
  so a list of any size costs one lookup (CEL would copy the whole list on every run).

Running never raises: `Expression.test` answers (matched, error text or None).
Nothing here evaluates Python: CEL is a separate, side-effect-free language.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from models.rules.lexer import IDENT, INT, Token, line_column, tokens
from models.rules.vocabulary import LATLON, LISTS, Vocabulary, as_list_item

MAX_CHARS = 4000
# CEL macros whose first argument names a variable bound inside them: x in
# `[1, 2].exists(x, x > amount)` is not a field.
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
KEYWORDS = frozenset({"true", "false", "null", "in"})
# What may stand right before `<name> in lists.<list>` and right after it, so that the
# membership is a whole operand (CEL's `in` binds looser than arithmetic, tighter than &&).
BEFORE = frozenset({"(", ",", "&&", "||", "?", ":", "[", "{"})
AFTER = frozenset({")", ",", "&&", "||", "?", ":", "]", "}"})
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")
# The functions the `cel` package implements (besides its operators); a
# call to any other would fail on every transaction.
FUNCTIONS = frozenset(
    "size contains startsWith endsWith matches int uint double string bytes timestamp "
    "duration type dyn getDate getDayOfMonth getDayOfWeek getDayOfYear getFullYear getHours "
    "getMilliseconds getMinutes getMonth getSeconds orValue hasValue value".split()
)
_IDENTIFIER = re.compile(r"^[a-zA-Z][_a-zA-Z0-9]*$")
_TYPE_ERRORS = ("No such overload", "Unsupported operation", "Unexpected type")


class ExpressionError(ValueError):
    """An expression that cannot be a rule: where (1-based line and column, 0-based
    offset) and why."""

    def __init__(self, reason: str, source: str, offset: int) -> None:
        self.reason = reason
        self.offset = max(0, min(offset, len(source)))
        self.line, self.column = line_column(source, self.offset)
        super().__init__(f"line {self.line}, column {self.column}: {reason}")


@dataclass(frozen=True)
class Membership:
    """`<name> in lists.<list_name>`, answered in Python into the variable `variable`."""

    variable: str
    name: str
    list_name: str


@dataclass(frozen=True)
class Expression:
    source: str  # as written
    program: Any  # cel.Program of the rewritten text
    reads: tuple[str, ...]  # the vocabulary names it reads
    lists: tuple[str, ...]  # the lists it reads
    memberships: tuple[Membership, ...]

    def test(
        self, variables: Mapping[str, Any], lists: Mapping[str, frozenset[str]]
    ) -> tuple[bool, str | None]:
        """(matched, None), or (False, why) when it cannot be answered for this
        transaction (a missing value, a type error, an undefined list)."""
        activation = {name: variables.get(name) for name in self.reads}
        for member in self.memberships:
            items = lists.get(member.list_name)
            if items is None:
                return False, f"list {member.list_name!r} is not defined"
            activation[member.variable] = as_list_item(variables.get(member.name)) in items
        try:
            result = self.program.execute(activation)
        except Exception as exc:  # noqa: BLE001 - cel raises many kinds; each is one failure
            return False, _first_sentence(str(exc))
        if not isinstance(result, bool):
            return False, f"gave {_short(result)}, not true or false"
        return result, None


def compile_expression(source: str, vocabulary: Vocabulary) -> Expression:
    """The compiled expression, or ExpressionError saying where and why it is refused."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty", "", 0)
    if len(source) > MAX_CHARS:
        raise ExpressionError(f"longer than {MAX_CHARS} characters", source, MAX_CHARS)
    _parse(source)
    toks = tokens(source)
    bound = _bound_names(toks)
    memberships: list[tuple[int, int, Membership]] = []  # (start, end, membership)
    reads: set[str] = set()
    for i, token in enumerate(toks):
        if token.kind != IDENT or token.text in KEYWORDS or token.text in bound:
            continue
        if _text(toks, i - 1) == "." or _text(toks, i + 1) == "(":
            continue  # a member (home.lat) or a function (size(x)): CEL checks those
        if token.text == LISTS:
            member = _membership(source, toks, i, vocabulary, len(memberships))
            memberships.append(member)
            continue
        if token.text not in vocabulary.names:
            raise ExpressionError(_unknown(token.text, vocabulary), source, token.start)
        reads.add(token.text)
    rewritten = _rewrite(source, toks, memberships)
    try:
        program = cel.compile(rewritten)
    except Exception as exc:  # noqa: BLE001 - should not happen: the text parsed above
        raise ExpressionError(_first_sentence(str(exc)), source, 0) from None
    _check_functions(source, toks, program.functions())
    expression = Expression(
        source=source,
        program=program,
        reads=tuple(sorted(reads)),
        lists=tuple(sorted({m.list_name for _, _, m in memberships})),
        memberships=tuple(m for _, _, m in memberships),
    )
    _trial(expression, vocabulary)
    return expression


def _parse(source: str) -> None:
    """CEL's parser on the text as written: its first error, at its position."""
    try:
        cel.compile(source)
    except Exception as exc:  # noqa: BLE001 - cel reports syntax errors as ValueError
        message = str(exc)
        found = _CEL_POSITION.search(message)
        if found is None:
            raise ExpressionError(_first_sentence(message), source, 0) from None
        line, column, reason = int(found[1]), int(found[2]), found[3].strip()
        raise ExpressionError(reason, source, _offset(source, line, column)) from None


def _offset(source: str, line: int, column: int) -> int:
    lines = source.split("\n")
    before = sum(len(text) + 1 for text in lines[: line - 1])
    return before + column - 1


def _bound_names(toks: list[Token]) -> set[str]:
    """Variables bound by macros: `x` in `.exists(x, ...)`."""
    bound = set()
    for i in range(len(toks) - 4):
        if (
            toks[i].text == "."
            and toks[i + 1].text in MACROS
            and toks[i + 2].text == "("
            and toks[i + 3].kind == IDENT
            and toks[i + 4].text == ","
        ):
            bound.add(toks[i + 3].text)
    return bound


def _text(toks: list[Token], i: int) -> str | None:
    return toks[i].text if 0 <= i < len(toks) else None


def _membership(
    source: str, toks: list[Token], i: int, vocabulary: Vocabulary, index: int
) -> tuple[int, int, Membership]:
    """`<name> in lists.<list>` around the `lists` token at i, or ExpressionError."""
    lists_token = toks[i]
    if _text(toks, i + 1) != "." or i + 2 >= len(toks) or toks[i + 2].kind != IDENT:
        raise ExpressionError(
            "a list is used as `<field> in lists.<name>`, e.g. `card in lists.vip_cards`",
            source,
            lists_token.start,
        )
    name_token = toks[i + 2]
    if name_token.text not in vocabulary.lists:
        known = ", ".join(sorted(vocabulary.lists)) or "none yet"
        raise ExpressionError(
            f"unknown list {name_token.text!r} (lists: {known})", source, name_token.start
        )
    left = toks[i - 2] if i >= 2 else None
    whole_operand = (
        _text(toks, i - 1) == "in"
        and left is not None
        and left.kind == IDENT
        and vocabulary.names.get(left.text) not in (None, LATLON)
        and (i < 3 or toks[i - 3].text in BEFORE)
        and (i + 3 >= len(toks) or toks[i + 3].text in AFTER)
    )
    if not whole_operand:
        raise ExpressionError(
            "a list is used as `<field> in lists.<name>` with a field or feature on the "
            "left, e.g. `card in lists.vip_cards` (in parentheses inside a larger "
            "expression)",
            source,
            lists_token.start,
        )
    membership = Membership(f"__in_{index}", left.text, name_token.text)
    return left.start, name_token.end, membership


def _unknown(name: str, vocabulary: Vocabulary) -> str:
    close = difflib.get_close_matches(name, [*vocabulary.names, LISTS], n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown name {name!r}: not a field, feature or list of this config{hint}"


def _rewrite(source: str, toks: list[Token], memberships: list[tuple[int, int, Membership]]) -> str:
    """The text CEL runs: whole numbers as doubles, memberships as their variables."""
    spans = [(start, end, m.variable) for start, end, m in memberships]
    covered = [(start, end) for start, end, _ in spans]
    for token in toks:
        if token.kind == INT and not any(s <= token.start < e for s, e in covered):
            spans.append((token.start, token.end, token.text + ".0"))
    out, last = [], 0
    for start, end, text in sorted(spans):
        out.append(source[last:start])
        out.append(text)
        last = end
    out.append(source[last:])
    return "".join(out)


def _check_functions(source: str, toks: list[Token], used: list[str]) -> None:
    for name in used:
        if not _IDENTIFIER.match(name) or name in FUNCTIONS:  # operators: "_+_", "!_", "@in"
            continue
        at = next(
            (t.start for i, t in enumerate(toks) if t.text == name and _text(toks, i + 1) == "("),
            0,
        )
        raise ExpressionError(f"unknown function {name!r}", source, at)


def _trial(expression: Expression, vocabulary: Vocabulary) -> None:
    """Run once on a sample transaction (every value of its declared type): a type error
    or a result other than true/false is the expression's fault, whatever the data."""
    source = expression.source
    variables = vocabulary.sample()
    activation: dict[str, Any] = {name: variables[name] for name in expression.reads}
    activation.update({m.variable: False for m in expression.memberships})
    try:
        result = expression.program.execute(activation)
    except Exception as exc:  # noqa: BLE001 - cel raises many kinds
        message = str(exc)
        if message.startswith(_TYPE_ERRORS):
            raise ExpressionError(f"type error: {_first_sentence(message)}", source, 0) from None
        return  # depends on the values (an empty text, a division): a runtime matter
    if not isinstance(result, bool):
        raise ExpressionError(
            f"the expression gives {type(result).__name__} {_short(result)}, not true or false",
            source,
            0,
        )


def _first_sentence(message: str) -> str:
    first = message.strip().split("\n")[0]
    cut = first.find(". ")
    return _short(first[: cut + 1] if cut > 0 else first, 300)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
