"""What a PromQL expression reads: each series selector's metric name, the labels it names, and the functions
around it. Enough of PromQL for checking a dashboard against the metrics the code exports, not a full parser.

`sum by (le) (rate(x_bucket{a="1"}[5m]))` reads `x_bucket` with labels `a` and `le`, inside `sum` and `rate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Keywords that look like names but are not series: binary operators, modifiers and grouping clauses.
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Aggregations may put their grouping first: `sum by (le) (...)`.
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"}
    | {"limitk", "limit_ratio"}
)
_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<braces>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*\b|\d*\.?\d+(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


@dataclass(frozen=True)
class Selector:
    """One series selector: its metric, the labels matched or grouped on around it, the enclosing functions."""

    metric: str
    labels: frozenset[str]
    functions: tuple[str, ...]


def selectors(expr: str) -> list[Selector]:
    """Every series selector in `expr`, outermost function first in each one's `functions`.

    Labels named by `by (...)`, `without (...)`, `on (...)` and the like count for every selector of the
    expression, since they must exist on what is aggregated or matched.
    """
    tokens = [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"]
    found: list[tuple[str, set[str], tuple[str, ...]]] = []
    grouped: set[str] = set()
    stack: list[str] = []  # the function (or "") each open parenthesis belongs to
    aggregation = ""  # an aggregation waiting for its argument list past its grouping clause
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "name" and text in _GROUPING:
            if following[0] == "open":  # a label list: `by (le, status)`
                end = next(j for j in range(i + 1, len(tokens)) if tokens[j][0] == "close")
                grouped.update(t for k, t in tokens[i + 2 : end] if k == "name")
                i = end
        elif kind == "name" and following[0] == "open" and text not in _KEYWORDS:
            stack.append(text)  # a function or an aggregation called with its argument list
            i += 1
        elif kind == "name" and text in _AGGREGATIONS:
            aggregation = text
        elif kind == "name" and text not in _KEYWORDS:
            labels = set(_MATCHER.findall(following[1])) if following[0] == "braces" else set()
            found.append((text, labels, tuple(stack)))
        elif kind == "open":
            stack.append(aggregation)
            aggregation = ""
        elif kind == "close" and stack:
            stack.pop()
        i += 1
    return [Selector(metric, frozenset(labels | grouped), functions) for metric, labels, functions in found]
