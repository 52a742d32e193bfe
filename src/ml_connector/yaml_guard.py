"""A budget for YAML aliases, checked on the composed node graph before anything is constructed.

An alias is a reference, so a few lines of anchors and aliases can stand for billions of values
(the "billion laughs"): PyYAML composes them cheaply, but every walk over the data (line index,
${ENV} interpolation, validation) expands them, and a config ran `validate` out of memory. A
recursive alias (`a: &a [*a]`) never ends at all. A real config uses aliases to share a block or
two, so the document may grow by at most `budget` nodes through aliases; beyond that, or on a
recursive alias, the file is refused with the line of the anchor that went too far.

Sizes are counted once per distinct node (memoised), so the check costs one pass over what was
written, however far the aliases would expand.
"""

from __future__ import annotations

import yaml

__all__ = ["DEFAULT_ALIAS_BUDGET", "AliasBudgetError", "check_alias_budget"]

#: Nodes aliases may add to a document (a config with no aliases adds none).
DEFAULT_ALIAS_BUDGET = 10_000


class AliasBudgetError(yaml.MarkedYAMLError):
    """The document's aliases expand beyond the budget, or refer to themselves."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_alias_budget(root: yaml.Node, budget: int = DEFAULT_ALIAS_BUDGET) -> None:
    """Raise AliasBudgetError when expanding `root` takes more than `budget` nodes beyond those
    written, or when a node contains itself."""
    sizes: dict[int, int] = {}
    distinct = 0
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise AliasBudgetError(problem="a recursive alias: this anchored node contains an alias of itself",
                                   problem_mark=node.start_mark)
        active.add(key)
        distinct += 1
        total = 1 + sum(size(child) for child in _children(node))
        active.discard(key)
        sizes[key] = total
        if total - distinct > budget:
            raise AliasBudgetError(
                problem=f"aliases expand this node to {total:,} values, more than {budget:,} beyond "
                        "what the file writes (an alias bomb?); write the repeated part out",
                problem_mark=node.start_mark)
        return total

    size(root)
