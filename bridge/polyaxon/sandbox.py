"""The Jinja environment a component's templates render in: sandboxed, and on a budget.

Jinja's sandbox keeps a template away from Python's internals; it does not stop one from spinning or filling
memory (nested `range()` loops, `'x' * 10**9`, `'%0999999999d' % 1`, a macro that calls itself twice). An inline
operation's templates come from whoever can write to a topic, so each run renders under a `RenderBudget`: a
deadline and a cap on the characters (and items) produced. Every place a template can spend either checks it:

- each step of each `for` loop (the compiler wraps the loop's iterable), each call (functions, methods, macros,
  `loop()`), each attribute or item read and each filter look at the clock;
- what they produce, and every `~`, `+`, `*`, `**` and `%`, is charged against the size cap, before the value is
  built wherever Python would build a big one in a single step (a repeat, a power, a padded format, a join);
- the output is charged piece by piece.

A budget that runs out raises `RenderBudgetExceeded`, a Jinja TemplateError, so it is reported like any other
template problem. Inside `budget_scope`, the first render that runs out of time makes the following ones fail at
once: validating a thousand runs of a template that spins costs one budget, not a thousand.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

__all__ = ["RenderBudget", "RenderBudgetExceeded", "budget_scope", "metered", "render_template"]


@dataclass(frozen=True)
class RenderBudget:
    """What rendering one run may spend: `timeout_s` of wall time, `max_chars` characters produced in all."""

    timeout_s: float = 2.0
    max_chars: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.timeout_s > 0 or self.max_chars < 1:
            raise ValueError(f"a render budget needs timeout_s > 0 and max_chars >= 1, got {self}")


DEFAULT_BUDGET = RenderBudget()


class RenderBudgetExceeded(jinja2.TemplateError):
    """A template used more time or produced more text than its run's render budget allows."""


class _Meter:
    """The budget of one render in progress."""

    def __init__(self, budget: RenderBudget, scope: _Scope | None) -> None:
        self.budget = budget
        self.deadline = time.monotonic() + budget.timeout_s
        self.left = budget.max_chars
        self.scope = scope

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            message = f"rendering took longer than its budget of {self.budget.timeout_s:g} s"
            if self.scope is not None:
                self.scope.spent = message
            raise RenderBudgetExceeded(message)

    def charge(self, size: int) -> None:
        self.tick()
        self.left -= size
        if self.left < 0:
            limit = self.budget.max_chars
            raise RenderBudgetExceeded(f"the template produces more than its budget of {limit} characters")


@dataclass
class _Scope:
    budget: RenderBudget | None
    spent: str | None = None


_METER: ContextVar[_Meter | None] = ContextVar("bridge_render_meter", default=None)
_SCOPE: ContextVar[_Scope | None] = ContextVar("bridge_render_scope", default=None)


@contextmanager
def budget_scope(budget: RenderBudget | None) -> Iterator[None]:
    """Renders inside (that are not given a budget of their own) use `budget`; once one has run out of time, the
    rest fail at once with the same message. Per thread and per asyncio task (a ContextVar)."""
    token = _SCOPE.set(_Scope(budget))
    try:
        yield
    finally:
        _SCOPE.reset(token)


@contextmanager
def metered(budget: RenderBudget | None = None) -> Iterator[None]:
    """Render everything inside on one budget: `budget`, else the enclosing scope's, else `DEFAULT_BUDGET`."""
    scope = _SCOPE.get()
    if scope is not None and scope.spent is not None:
        raise RenderBudgetExceeded(scope.spent)
    chosen = budget or (scope.budget if scope is not None else None) or DEFAULT_BUDGET
    token = _METER.set(_Meter(chosen, scope))
    try:
        yield
    finally:
        _METER.reset(token)


def _tick() -> None:
    meter = _METER.get()
    if meter is not None:
        meter.tick()


def _charge(size: int) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.charge(size)


def _charge_result(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        _charge(len(value))
    return value


MAX_INT_ARGUMENT = 10_000
"""The largest integer argument of a call or filter: a width, count or indent is how one call builds a huge value
(`'x'.ljust(10**9)`, `center(10**9)`, `tojson(indent=...)`), and no command line needs one this wide."""
MAX_NUMBER_DIGITS = 10_000
"""The most digits a product or power may have: a chain of them would otherwise spin on one huge number."""


def _check_int_args(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    for arg in [*args, *kwargs.values()]:
        if isinstance(arg, int) and abs(arg) > MAX_INT_ARGUMENT:
            raise RenderBudgetExceeded(f"the argument {arg} is larger than {MAX_INT_ARGUMENT}")


_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")


def _check_format(pattern: str) -> None:
    """Refuse a printf- or str.format-style pattern whose width or precision is beyond the size cap."""
    widths = [w for m in _PERCENT_WIDTH.finditer(pattern) for w in m.groups() if w and w != "*"]
    widths += [w for spec in _BRACE_SPEC.findall(pattern) for w in re.findall(r"\d+", spec)]
    if any(len(w) > 9 or int(w) > MAX_INT_ARGUMENT for w in widths):
        raise RenderBudgetExceeded("a format width is larger than the render budget allows")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Charge what `left <operator> right` will build, before it is built."""
    if isinstance(left, int) and isinstance(right, int) and operator in ("*", "**"):
        _check_number(operator, left, right)
    elif operator == "*":
        seq, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(count, int) and _size(seq):
            _charge(_size(seq) * max(count, 0))
    elif operator == "+":
        _charge(_size(left) + _size(right))
    elif operator == "%" and isinstance(left, str):
        _check_format(left)
        _check_int_args(right if isinstance(right, tuple) else (right,), {})


def _check_number(operator: str, left: int, right: int) -> None:
    """Refuse a product or power of more than MAX_NUMBER_DIGITS digits, estimated from the operands' sizes."""
    if operator == "*":
        digits = (left.bit_length() + right.bit_length()) * math.log10(2)
    elif abs(left) > 1 and right > 0:
        digits = right * math.log10(abs(left))
    else:
        return
    if digits > MAX_NUMBER_DIGITS:
        raise RenderBudgetExceeded(f"the result of `{operator}` would have more than {MAX_NUMBER_DIGITS} digits")


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _check_int_args(args, kwargs)
    target = getattr(obj, "__wrapped__", obj)  # the sandbox hands out `str.format` wrapped
    owner, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
    if isinstance(owner, str):
        if name in ("format", "format_map"):
            _check_format(owner)
        elif name == "join" and args:
            _charge(sum(len(str(part)) for part in _sized(args[0])))
        elif name == "replace" and len(args) >= 2:
            _charge_replace(owner, args[0], args[1])


def _sized(value: Any) -> Iterable[Any]:
    # Only what is already in memory is measured ahead; anything else is charged when it is produced.
    return value if isinstance(value, list | tuple | set | frozenset | dict) else ()


def _charge_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if old == "" else text.count(old)
        _charge(hits * len(new))


class _BudgetTransformer(NodeTransformer):
    """Routes every loop's iterable and every `~` through the budget (see the module docstring)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, _STEPS, node.lineno)  # type: ignore[arg-type]  # an Expr, typed as Node
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT, node.lineno)


def _filter(value: nodes.Expr, name: str, lineno: int) -> nodes.Filter:
    return nodes.Filter(value, name, [], [], None, None, lineno=lineno)


class _BudgetCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _BudgetTransformer().visit(node)
        node.set_environment(self.environment)
        super().visit_Template(node, frame)


class _BudgetEnvironment(SandboxedEnvironment):
    """A SandboxedEnvironment whose calls, reads and big-value operators are metered."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call from a template, within the budget."""
        _tick()
        _check_call(__obj, args, kwargs)
        return _charge_result(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """An intercepted operator, charged before it runs."""
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """An attribute read, within the deadline."""
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: str | Any) -> Any:
        """An item read, within the deadline."""
        _tick()
        return super().getitem(obj, argument)


ENV = _BudgetEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
# lipsum(n=...) builds as much text as asked in one call; no component needs it.
del ENV.globals["lipsum"]


def _metered_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = jinja2.utils._PassArg.from_obj(function)  # Jinja's own marker: keep how the filter is called

    def checked(*args: Any, **kwargs: Any) -> Any:
        _tick()
        # With pass_context & co. the value comes after the context; the value itself is not an argument.
        value_at = 1 if pass_arg is not None else 0
        value, options = (args[value_at] if len(args) > value_at else None), args[value_at + 1 :]
        _check_filter(name, value, options, kwargs)
        return _charge_result(function(*args, **kwargs))

    if pass_arg is not None:
        checked.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]  # how Jinja marks pass_context & co.
    return checked


def _check_filter(name: str, value: Any, options: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Charge, before it runs, what a filter that multiplies its input will build."""
    _check_int_args(options, kwargs)
    text = value if isinstance(value, str) else ""
    if name == "format":
        _check_format(text)
    elif name == "map_format" and options and isinstance(options[0], str):
        _check_format(options[0])
    elif name == "join":
        _charge(sum(len(str(part)) for part in _sized(value)))
    elif name == "replace" and len(options) >= 2:
        _charge_replace(value, options[0], options[1])
    elif name == "indent":
        width = options[0] if options else kwargs.get("width", 4)
        _charge((text.count("\n") + 1) * (len(width) if isinstance(width, str) else 0))
    elif name == "wordwrap":
        wrap = options[2] if len(options) > 2 else kwargs.get("wrapstring")
        _charge(len(text) * (len(wrap) if isinstance(wrap, str) else 1))


def add_filter(name: str, function: Callable[..., Any]) -> None:
    """Register a filter for component templates, metered like the built-in ones."""
    ENV.filters[name] = _metered_filter(name, function)


for _name, _function in list(ENV.filters.items()):
    add_filter(_name, _function)


_STEPS = "bridge_metered_steps"
_CONCAT = "bridge_metered_concat"


@jinja2.pass_context  # never folded at compile time: a loop's steps are counted when it runs
def _metered_steps(context: Context, iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


@jinja2.pass_context  # same
def _metered_concat(context: Context, parts: list[Any]) -> str:
    texts = [str(part) for part in parts]
    _charge(sum(map(len, texts)))
    return "".join(texts)


ENV.filters[_STEPS] = _metered_steps
ENV.filters[_CONCAT] = _metered_concat


@lru_cache(maxsize=1024)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template for `source` (cached: the same component renders for every run)."""
    return ENV.from_string(source)


def render_template(source: str, context: Mapping[str, Any]) -> str:
    """Render `source` with `context` on the current budget (see `metered`; none active: a budget of its own),
    charging its output piece by piece. Compiling is charged too: Jinja folds constant filters then."""
    if _METER.get() is None:
        with metered():
            return render_template(source, context)
    if "{" not in source and "\r" not in source:
        # Plain text (most argv items: the program, its flags): every Jinja construct opens with `{` (no line
        # statements are configured), and Jinja would only turn \r newlines into \n. So it renders to itself.
        _charge(len(source))
        return source
    template = compile_template(source)
    pieces: list[str] = []
    for piece in template.generate(context):
        _charge(len(piece))
        pieces.append(piece)
    return "".join(pieces)
