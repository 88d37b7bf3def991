"""A rule's states and the moves between them: draft -> shadow -> active -> retired.

- ``draft``: written, backtested, not run;
- ``shadow``: run on live traffic, its matches recorded, decisions unchanged;
- ``active``: decides;
- ``retired``: no longer run; kept with every earlier version.

Editing a draft, shadow or retired rule makes a new draft version (a shadow rule stops
being run until shadowed again). An active rule is not edited in place: retire it first,
or write a new rule, so what decides is always a version that went through shadow.
"""

from __future__ import annotations

from models.rules.rule import ACTIVE, DRAFT, RETIRED, SHADOW

# Target state -> the states a rule may move to it from.
MOVES = {SHADOW: (DRAFT,), ACTIVE: (SHADOW,), RETIRED: (DRAFT, SHADOW, ACTIVE)}
EDITABLE = (DRAFT, SHADOW, RETIRED)


class LifecycleError(ValueError):
    """A move or edit the rule's current state does not allow."""


def check_move(current: str, target: str) -> bool:
    """True if the rule moves; False if it is already in `target` (nothing to do);
    LifecycleError naming the states otherwise."""
    if current == target:
        return False
    allowed = MOVES.get(target, ())
    if current not in allowed:
        raise LifecycleError(
            f"the rule is {current}: only a {' or '.join(allowed) or 'no'} rule can become {target}"
        )
    return True


def check_edit(current: str) -> None:
    if current not in EDITABLE:
        raise LifecycleError(
            f"the rule is {current}: retire it before editing it, or draft a new rule"
        )
