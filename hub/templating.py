"""The one runtime for every admin-written template, with a budget on work.

Outbound requests (CRM sync actions, dispatcher rules: URL, headers, body) and
the M8Com link templates (``Brand.more_info_url_template``,
``Brand.create_activity_urls``) all compile and render here. Jinja2's
immutable sandbox keeps templates away from Python internals; on top of it
every render has a budget on the *work* it does, not only on what it writes,
so no template can stall a lookup or a delivery worker:

* ``range()`` gives at most ``Budget.max_range`` numbers;
* all loops of one render together run at most ``Budget.iterations`` times
  (nested loops count every inner step; recursive loops too);
* no string or list built along the way grows past ``Budget.max_string``
  characters/items: ``*``, ``**``, ``+``, ``%``, ``~``, list/tuple/dict literals and the
  filters and ``str`` methods that pad, repeat or join check the size
  *before* building (a list holding itself twice, nested, counts twice);
* a render using more than ``Budget.seconds`` of CPU time is stopped (checked
  in the sandbox's hooks: attribute and item access, calls, operators, loop
  steps, filters).

A template over its budget raises :class:`TemplateRenderError` with a reason
an admin understands. Saved templates are checked first (:func:`template_problems`:
syntax, secret-derived expressions, a render with sample values under the
same budget). Compiled templates are cached by (kind, source).

Secrets (``{{ secrets.api_key }}``, a rule's encrypted key) may only be
written as they are (optionally ``|raw``): a filter, method, test, loop,
assignment or concatenation on ``secrets`` would produce a derived value no
masking could recognise, so such a template is refused when saved and when
compiled.

URL templates (``url_kind``) escape each value for the part of the URL it
lands in (host, path, query, fragment), so a customer id such as
``1/../../logout?next=//evil.example#`` stays inside its own path segment.
"""

from __future__ import annotations

import contextvars
import json
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from django.conf import settings
from jinja2 import ChainableUndefined, TemplateError, Undefined, nodes
from jinja2.filters import do_urlencode
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Cycler, Joiner, Namespace, missing
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

SECRETS_NAME = "secrets"
MAX_CALL_DEPTH = 20


class TemplateRenderError(Exception):
    """A template could not be compiled or rendered; ``reason`` says why in an admin's words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TemplateBudgetError(SecurityError):
    """The template did more work than its budget allows (raised inside the sandbox)."""


@dataclass(frozen=True)
class Budget:
    """Limits on the work of one render."""

    seconds: float
    iterations: int
    max_range: int
    max_string: int
    max_int_bits: int = 4096


def default_budget() -> Budget:
    """Outbound templates (URL, headers, body): HUB_TEMPLATE_TIME_BUDGET_MS and HUB_TEMPLATE_MAX_OUTPUT_BYTES."""
    return Budget(
        seconds=getattr(settings, "HUB_TEMPLATE_TIME_BUDGET_MS", 20) / 1000,
        iterations=10_000,
        max_range=1000,
        max_string=getattr(settings, "HUB_TEMPLATE_MAX_OUTPUT_BYTES", 256 * 1024),
    )


def link_budget() -> Budget:
    """M8Com link templates, rendered on the lookup hot path (M8Com gives up at 3 s):
    HUB_LINK_TEMPLATE_TIME_BUDGET_MS for all links of one answer together."""
    return Budget(
        seconds=getattr(settings, "HUB_LINK_TEMPLATE_TIME_BUDGET_MS", 5) / 1000,
        iterations=1000,
        max_range=1000,
        max_string=16 * 1024,
    )


# ---------------------------------------------------------------- the work of one render


# The time budget counts the rendering thread's CPU time: what the template
# makes the machine do. A busy machine (other requests, other tenants) slows a
# render down but does not push a normal template over its budget.
clock = time.thread_time


class _Work:
    """Counters of the render under way (one per render, in a context variable)."""

    __slots__ = ("budget", "deadline", "depth", "iterations", "seconds", "ticks")

    def __init__(self, budget: Budget, seconds: float | None = None):
        self.budget = budget
        self.seconds = budget.seconds if seconds is None else seconds
        self.deadline: float | None = None
        self.iterations = 0
        self.ticks = 0
        self.depth = 0

    def tick(self) -> None:
        # The clock is read every 16th step, from the 16th on: a normal link
        # template never pays for it (16 steps are microseconds).
        self.ticks += 1
        if self.ticks & 15:
            return
        now = clock()
        if self.deadline is None:
            self.deadline = now + self.seconds
        elif now > self.deadline:
            raise TemplateBudgetError(f"it took longer than {self.budget.seconds * 1000:g} ms")

    def step(self) -> None:
        self.iterations += 1
        if self.iterations > self.budget.iterations:
            raise TemplateBudgetError(f"its loops ran more than {self.budget.iterations} times")
        self.tick()


class _NoWork(_Work):
    """Outside a render (Jinja folding constants while compiling): sizes are checked, time is not."""

    def tick(self) -> None:
        pass

    def step(self) -> None:
        pass


_WORK: contextvars.ContextVar[_Work | None] = contextvars.ContextVar("hub_template_work", default=None)


_NO_WORK = _NoWork(Budget(seconds=0, iterations=0, max_range=1000, max_string=256 * 1024))


def _work() -> _Work:
    work = _WORK.get()
    return work if work is not None else _NO_WORK


_CONTAINERS = (list, tuple, dict)
MAX_NESTING = 50


def _weight(value: Any) -> int:
    """Characters of a string; items and their characters of a list, tuple or
    dict, nested ones included: what building or printing it costs. A value
    repeated (``[x] * 1000``) is measured once and counted each time."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return 1
    seen: dict[int, int] = {}

    def measure(item: Any, depth: int) -> int:
        if isinstance(item, (str, bytes)):
            return len(item)
        if not isinstance(item, _CONTAINERS):
            return 1
        known = seen.get(id(item))
        if known is not None:
            return known
        if depth > MAX_NESTING:
            raise TemplateBudgetError(f"it nested lists more than {MAX_NESTING} levels deep")
        items = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        total = len(item) + sum(measure(inner, depth + 1) for inner in items)
        seen[id(item)] = total
        return total

    return measure(value, 0)


def _check_size(value: Any, budget: Budget) -> Any:
    if isinstance(value, (str, bytes, *_CONTAINERS)) and _weight(value) > budget.max_string:
        raise TemplateBudgetError(f"it built a value larger than {budget.max_string} characters")
    return value


def _check_int(value: Any, budget: Budget) -> None:
    if isinstance(value, int) and value.bit_length() > budget.max_int_bits:
        raise TemplateBudgetError(f"it built a number larger than {budget.max_int_bits} bits")


def _too_big(size: int, budget: Budget) -> None:
    if size > budget.max_string:
        raise TemplateBudgetError(f"it would build a value larger than {budget.max_string} characters")


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# printf-style (``%`` and the format filter): a width or precision from the
# arguments (``*``) or larger than the budget would pad without limit.
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _values(arguments: Any) -> list[Any]:
    if isinstance(arguments, dict):
        return list(arguments.values())
    return list(arguments) if isinstance(arguments, tuple) else [arguments]


def _check_fields(fmt: str, fields: int, values: list[Any], budget: Budget) -> None:
    """A format string repeats its arguments once per field (``"%(a)s" * 1000 % {"a": big}``)."""
    largest = max((_weight(value) for value in values), default=0)
    _too_big(len(fmt) + fields * largest, budget)


def _check_printf(fmt: str, arguments: Any, budget: Budget) -> None:
    fields = 0
    for match in _PRINTF_SPEC.finditer(fmt):
        fields += 1
        for number in match.groups():
            if number == "*":
                raise TemplateBudgetError("a width or precision taken from the arguments (*) is not allowed")
            if number is not None:
                _too_big(int(number), budget)
    _check_fields(fmt, fields, _values(arguments), budget)


def _check_format_string(fmt: str, values: list[Any], budget: Budget) -> None:
    """``str.format``: nested fields in a spec are refused, widths are bounded."""
    fields = 0
    for _literal, field_name, spec, _conversion in string.Formatter().parse(fmt):
        if field_name is None:
            continue
        fields += 1
        spec = spec or ""
        if "{" in spec:
            raise TemplateBudgetError("a width taken from the arguments ({:>{}}) is not allowed")
        for number in re.findall(r"\d+", spec):
            _too_big(int(number), budget)
    _check_fields(fmt, fields, values, budget)


# ---------------------------------------------------------------- operators, calls, filters


def _binop_guard(operator: str, left: Any, right: Any, budget: Budget) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            count = _as_int(times)
            if isinstance(seq, (str, bytes, list, tuple)) and count is not None and count > 0:
                _too_big(_weight(seq) * count, budget)
        if _as_int(left) is not None and _as_int(right) is not None:
            if left.bit_length() + right.bit_length() > budget.max_int_bits:
                raise TemplateBudgetError(f"it would build a number larger than {budget.max_int_bits} bits")
    elif operator == "**":
        base, exponent = _as_int(left), _as_int(right)
        if base is not None and exponent is not None and exponent > 0 and abs(base) > 1:
            if base.bit_length() * exponent > budget.max_int_bits:
                raise TemplateBudgetError(f"it would build a number larger than {budget.max_int_bits} bits")
    elif operator == "+":
        if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
            _too_big(_weight(left) + _weight(right), budget)
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right, budget)


def _counted(iterable: Any) -> Iterator[Any]:
    """Every loop's items, each counted against the render's iteration budget."""
    work = _work()
    if isinstance(iterable, Undefined):
        iterable = ()
    for item in iterable:
        work.step()
        yield item


def _budget_concat(items: Iterable[Any]) -> str:
    """``a ~ b``: the parts are sized before they are joined."""
    parts = [str(item) for item in items]
    work = _work()
    work.tick()
    _too_big(sum(map(len, parts)), work.budget)
    return "".join(parts)


def _budget_value(value: Any) -> Any:
    """A list, tuple or dict literal, sized when it is built."""
    work = _work()
    work.tick()
    return _check_size(value, work.budget)


def _block_concat(parts: Iterable[str]) -> str:
    """Macro, loop, set and filter blocks collect their output before joining it."""
    parts = list(parts)
    _too_big(sum(map(len, parts)), _work().budget)
    return "".join(parts)


def _guarded_range(*args: int) -> range:
    budget = _work().budget
    numbers = range(*args)
    if len(numbers) > budget.max_range:
        raise TemplateBudgetError(f"range() may give at most {budget.max_range} numbers, not {len(numbers)}")
    return numbers


def _padding_width(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _pre_center(args: tuple, kwargs: dict, budget: Budget) -> None:
    width = _as_int(_padding_width(args, kwargs, 1, "width", 80))
    if width is not None:
        _too_big(width, budget)


def _pre_indent(args: tuple, kwargs: dict, budget: Budget) -> None:
    text = str(args[0]) if args else ""
    width = _padding_width(args, kwargs, 1, "width", 4)
    per_line = len(width) if isinstance(width, str) else (_as_int(width) or 0)
    _too_big(len(text) + (text.count("\n") + 1) * per_line, budget)


def _pre_wordwrap(args: tuple, kwargs: dict, budget: Budget) -> None:
    text = str(args[0]) if args else ""
    width = _as_int(_padding_width(args, kwargs, 1, "width", 79)) or 1
    wrapstring = _padding_width(args, kwargs, 3, "wrapstring", None)
    if wrapstring:
        _too_big(len(text) + (len(text) // max(width, 1) + 1) * len(str(wrapstring)), budget)


def _pre_replace(args: tuple, kwargs: dict, budget: Budget) -> None:
    if len(args) < 3:
        return
    text, old, new = str(args[0]), str(args[1]), str(args[2])
    count = _as_int(_padding_width(args, kwargs, 3, "count", None))
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _too_big(len(text) + hits * len(new), budget)


def _pre_format(args: tuple, kwargs: dict, budget: Budget) -> None:
    if args:
        _check_printf(str(args[0]), kwargs or tuple(args[1:]), budget)


def _pre_join(args: tuple, kwargs: dict, budget: Budget) -> None:
    items = args[0] if args else ()
    glue = str(_padding_width(args, kwargs, 1, "d", ""))
    if isinstance(items, (list, tuple, str, range)):
        _too_big(len(glue) * len(items) + _weight(items), budget)


def _pre_batch(args: tuple, kwargs: dict, budget: Budget) -> None:
    count = _as_int(_padding_width(args, kwargs, 1, "linecount" if "linecount" in kwargs else "slices", 0))
    if count is not None and count > budget.max_range:
        raise TemplateBudgetError(f"batch and slice sizes are limited to {budget.max_range}")


def _pre_sum(args: tuple, kwargs: dict, budget: Budget) -> None:
    start = _padding_width(args, kwargs, 2, "start", 0)
    if not isinstance(start, (int, float)):
        raise TemplateBudgetError("sum adds numbers only")


# Filters that pad, repeat or join: their size is checked before they build anything.
_FILTER_CHECKS: dict[str, Callable[[tuple, dict, Budget], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "replace": _pre_replace,
    "format": _pre_format,
    "join": _pre_join,
    "batch": _pre_batch,
    "slice": _pre_batch,
    "sum": _pre_sum,
}


def _guard_filter(name: str, func: Callable) -> Callable:
    check = _FILTER_CHECKS.get(name)
    # Filters given the context/environment first: the checks look at the arguments after it.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    def guarded(*args: Any, **kwargs: Any) -> Any:
        work = _work()
        work.tick()
        if check is not None:
            check(args[skip:], kwargs, work.budget)
        return _check_size(func(*args, **kwargs), work.budget)

    if skip:
        guarded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return guarded


def _method_check(obj: Any, args: tuple, kwargs: dict, budget: Budget) -> None:
    """``str`` / ``bytes`` methods that pad, repeat or join."""
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, (str, bytes)):
        return
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _as_int(args[0]) if args else None
        if width is not None:
            _too_big(width, budget)
    elif name == "expandtabs":
        size = _as_int(args[0] if args else kwargs.get("tabsize", 8)) or 0
        _too_big(len(owner) * max(size, 1), budget)
    elif name == "replace" and len(args) >= 2:
        _pre_replace((owner, *args[:2]), {"count": args[2] if len(args) > 2 else kwargs.get("count")}, budget)
    elif name == "join" and args and isinstance(args[0], (list, tuple, range)):
        _too_big(len(owner) * len(args[0]) + _weight(args[0]), budget)


# ---------------------------------------------------------------- the environment


class _Budgeted(NodeTransformer):
    """Rewrites a parsed template so loops count their steps and ``~`` sizes its parts."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_budget_iter", [], [], None, None, lineno=node.lineno)
        return node

    def visit_List(self, node: nodes.Expr) -> nodes.Node:
        # ``[x, x]`` in a loop doubles what printing or comparing the list costs: sized when built.
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # the targets of for and set
        return nodes.Filter(node, "_budget_value", [], [], None, None, lineno=node.lineno)

    visit_Tuple = visit_Dict = visit_List

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(
            nodes.List(node.nodes, lineno=node.lineno), "_budget_concat", [], [], None, None, lineno=node.lineno
        )


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every operation that can grow or loop checked."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, kind: TemplateKind):
        super().__init__(
            autoescape=False,
            undefined=kind.undefined,
            finalize=kind.finalize,
            keep_trailing_newline=True,
            optimized=False,
        )
        self.concat = _block_concat  # type: ignore[method-assign, assignment]
        # No lipsum (it writes paragraphs without a limit); range is bounded.
        self.globals = {
            "range": _guarded_range,
            "dict": dict,
            "namespace": Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
        }
        self.filters["raw"] = lambda value: Markup(plain_text(value))  # noqa: S704 - a marker, never HTML
        self.filters.update(kind.filters)
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.filters["_budget_iter"] = _counted
        self.filters["_budget_concat"] = _budget_concat
        self.filters["_budget_value"] = _budget_value

    def getattr(self, obj: Any, attribute: str) -> Any:
        _work().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _work().tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        work = _work()
        work.tick()
        _binop_guard(operator, left, right, work.budget)
        result = super().call_binop(context, operator, left, right)
        _check_int(result, work.budget)
        return _check_size(result, work.budget)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template_text = value.__self__
        is_format_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            work = _work()
            values = _values(args[0]) if is_format_map and args else [*args, *kwargs.values()]
            _check_format_string(template_text, values, work.budget)
            return _check_size(wrapper(*args, **kwargs), work.budget)

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        work = _work()
        work.tick()
        if isinstance(__obj, LoopContext) and args:
            # A recursive loop's ``loop(children)``: those steps count too.
            args = (_counted(args[0]), *args[1:])
        _method_check(__obj, args, kwargs, work.budget)
        if not isinstance(__obj, (Macro, LoopContext)):
            return _check_size(super().call(__context, __obj, *args, **kwargs), work.budget)
        # Macros and recursive loops calling themselves: a shallow limit instead of
        # Python's recursion limit (unwinding a thousand frames is slow too).
        work.depth += 1
        try:
            if work.depth > MAX_CALL_DEPTH:
                raise TemplateBudgetError(f"its macros or recursive loops nest more than {MAX_CALL_DEPTH} levels deep")
            return _check_size(super().call(__context, __obj, *args, **kwargs), work.budget)
        finally:
            work.depth -= 1


# ---------------------------------------------------------------- kinds of template


def plain_text(value: Any) -> str:
    """A value as text: lists and objects as JSON, booleans as true/false."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, eq=False)
class TemplateKind:
    """How one kind of template writes its values.

    ``escape`` turns each ``{{ value }}`` into text for where it lands (JSON
    string, XML text, header, ...); ``finish`` runs over the whole output (the
    URL kind escapes each value for its part of the URL there); values marked
    ``|raw`` are written as they are. Kinds are compared by identity: each
    module defines its kinds once."""

    name: str
    escape: Callable[[Any], str]
    finish: Callable[[str], str] | None = None
    undefined: type[Undefined] = ChainableUndefined
    filters: dict[str, Callable] = field(default_factory=dict)

    def finalize(self, value: Any) -> str:
        if value is None or isinstance(value, Undefined):
            return ""
        if isinstance(value, Markup):
            return str(value)
        return self.escape(value)


# URL values are marked while rendering and escaped at the end, once it is known
# whether each one landed in the host, the path, the query or the fragment.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKED = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.S)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.I)


def _unmarked(text: str) -> str:
    return text.replace(_OPEN, "").replace(_CLOSE, "")


def _url_mark(value: Any) -> str:
    return _OPEN + _unmarked(plain_text(value)) + _CLOSE


def url_part(prefix: str) -> str:
    """Where text written after ``prefix`` lands: start, authority, path, query or fragment."""
    text = prefix.lstrip()
    scheme = _SCHEME.match(text)
    if scheme:
        rest = text[scheme.end() :]
    elif text.startswith("/"):
        rest = text
    else:
        return "start"
    if "#" in rest:
        return "fragment"
    if "?" in rest:
        return "query"
    if rest.startswith("//"):
        return "path" if "/" in rest[2:] else "authority"
    return "path"


def _url_finish(text: str) -> str:
    if _OPEN not in text:
        return text
    out: list[str] = []
    position = 0
    in_path = False
    for match in _MARKED.finditer(text):
        out.append(_unmarked(text[position : match.start()]))
        part = url_part("".join(out))
        # In a path "@" cannot start a user name (the host is behind us), so
        # mailto:{{ email }} stays readable; everything else that could end a
        # segment, start a query or a fragment is percent-encoded.
        out.append(quote(match.group(1), safe="@" if part == "path" else ""))
        in_path = in_path or part == "path"
        position = match.end()
    out.append(_unmarked(text[position:]))
    url = "".join(out)
    # Before the query and fragment, "/" only separates segments: no segment may be "." or "..".
    if in_path and _DOT_SEGMENT.search(url.split("?", 1)[0].split("#", 1)[0]):
        raise TemplateRenderError("A value would change the URL's path (a '.' or '..' segment).")
    return url


def _url_urlencode(value: Any) -> Any:
    """``|urlencode`` in a URL: the value is escaped once, for its part of the URL
    (Jinja's own filter keeps "/" and would let a value add path segments);
    a mapping becomes ``a=1&b=2`` as in Jinja."""
    if isinstance(value, dict) or (isinstance(value, (list, tuple)) and value and isinstance(value[0], tuple)):
        return Markup(do_urlencode(value))  # noqa: S704 - a marker, never HTML
    return value


#: Outbound webhook URLs (CRM sync actions, rules): an unknown token is empty.
URL_KIND = TemplateKind("url", _url_mark, _url_finish, ChainableUndefined, {"urlencode": _url_urlencode})
#: M8Com link templates: an unknown token fails the link, which is then left out.
LINK_KIND = TemplateKind("link", _url_mark, _url_finish, Undefined, {"urlencode": _url_urlencode})
TEXT_KIND = TemplateKind("text", plain_text)


# ---------------------------------------------------------------- secrets


def secret_problems(tree: nodes.Template) -> list[str]:
    """``secrets.<name>`` may only be written as it is, or ``|raw``: anything
    else (filters, methods, tests, loops, assignments, ``~``) derives a value
    that masking could not recognise in logs and previews."""
    allowed: set[int] = set()
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            expr = child.node if isinstance(child, nodes.Filter) and child.name == "raw" and not child.args else child
            if (
                isinstance(expr, (nodes.Getattr, nodes.Getitem))
                and isinstance(expr.node, nodes.Name)
                and expr.node.name == SECRETS_NAME
                and (isinstance(expr, nodes.Getattr) or isinstance(expr.arg, nodes.Const))
            ):
                allowed.add(id(expr.node))
    for name in tree.find_all(nodes.Name):
        if name.name == SECRETS_NAME and id(name) not in allowed:
            return [
                f"Line {name.lineno}: a secret may only be written as it is, e.g. {{{{ secrets.api_key }}}} "
                "(or {{ secrets.api_key|raw }}); a filter, method, test, loop, assignment or concatenation "
                "on a secret would show a value no log can mask."
            ]
    return []


# ---------------------------------------------------------------- compile, render, check


@lru_cache(maxsize=32)
def _environment(kind: TemplateKind) -> BudgetedEnvironment:
    return BudgetedEnvironment(kind)


@dataclass(frozen=True)
class _Compiled:
    template: Any = None
    # Text and ``{{ a.b.c }}`` only (the usual link): the pieces, rendered
    # without Jinja's per-render machinery but through the same sandbox hooks.
    plan: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    error: str = ""


def _path(node: nodes.Node) -> tuple[str, ...] | None:
    """``a.b['c']`` as ("a", "b", "c"); None for any other expression."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        inner = _path(node.node)
        return None if inner is None else (*inner, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        inner = _path(node.node)
        return None if inner is None else (*inner, node.arg.value)
    return None


def _plan(tree: nodes.Template) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    pieces: list[tuple[str, tuple[str, ...]]] = []
    for child in tree.body[0].nodes:
        if isinstance(child, nodes.TemplateData):
            pieces.append((child.data, ()))
        elif (path := _path(child)) is not None:
            pieces.append(("", path))
        else:
            return None
    return tuple(pieces)


@lru_cache(maxsize=4096)
def _compile(kind: TemplateKind, source: str) -> _Compiled:
    """Parsed, checked and compiled once per (kind, source); a refused template
    is remembered too, so a broken stored template costs nothing per lookup."""
    env = _environment(kind)
    try:
        tree = env.parse(source)
    except TemplateError as exc:
        return _Compiled(error=f"Template syntax error: {exc}")
    problems = secret_problems(tree)
    if problems:
        return _Compiled(error=problems[0])
    plan = _plan(tree)
    try:
        code = env.compile(_Budgeted().visit(tree))
    except TemplateError as exc:
        return _Compiled(error=f"Template syntax error: {exc}")
    return _Compiled(template=env.template_class.from_code(env, code, env.make_globals(None), None), plan=plan)


def template_compile(*, kind: TemplateKind, source: str) -> Any:
    """The compiled template (cached); raises TemplateRenderError for a syntax
    error or a secret-derived expression."""
    compiled = _compile(kind, source)
    if compiled.error:
        raise TemplateRenderError(compiled.error)
    return compiled.template


def _render_plan(kind: TemplateKind, plan: tuple[tuple[str, tuple[str, ...]], ...], context: dict) -> Iterator[str]:
    env = _environment(kind)
    for text, path in plan:
        if not path:
            yield text
            continue
        name = path[0]
        value = context[name] if name in context else env.globals.get(name, missing)
        if value is missing:
            value = env.undefined(name=name)
        for attribute in path[1:]:
            value = env.getattr(value, attribute)
        yield kind.finalize(value)


def template_render(
    *,
    kind: TemplateKind,
    source: str,
    context: dict[str, Any],
    budget: Budget | None = None,
    limit: int | None = None,
    seconds: float | None = None,
) -> str:
    """Render within the budget (default :func:`default_budget`); ``limit`` caps
    the output (default the budget's string size), ``seconds`` overrides the
    time budget (a lookup passes what is left of its own). Raises
    TemplateRenderError with the reason."""
    if not source:
        return ""
    compiled = _compile(kind, source)
    if compiled.error:
        raise TemplateRenderError(compiled.error)
    budget = budget or default_budget()
    limit = budget.max_string if limit is None else limit
    token = _WORK.set(_Work(budget, seconds))
    try:
        chunks = _render_plan(kind, compiled.plan, context) if compiled.plan is not None else None
        out: list[str] = []
        size = 0
        for chunk in chunks if chunks is not None else compiled.template.generate(context):
            size += len(chunk)
            if size > limit:
                raise TemplateRenderError(f"The rendered {kind.name} is larger than {limit} characters.")
            out.append(chunk)
        text = "".join(out)
        return kind.finish(text) if kind.finish is not None else text
    except TemplateRenderError:
        raise
    except TemplateBudgetError as exc:
        raise TemplateRenderError(
            f"The {kind.name} template was stopped: {exc} (templates have a budget on work, see docs/security.md)."
        ) from exc
    except RecursionError as exc:
        raise TemplateRenderError(f"The {kind.name} template was stopped: it calls itself too deeply.") from exc
    except TemplateError as exc:
        raise TemplateRenderError(f"Template error in the {kind.name}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure inside a template is the template's
        raise TemplateRenderError(f"Template error in the {kind.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        _WORK.reset(token)


def template_problems(
    *, kind: TemplateKind, source: str, sample: dict[str, Any], budget: Budget | None = None
) -> list[str]:
    """Save-time check: syntax, secret-derived expressions, and a render with
    sample values within the budget (a looping template is refused here, in
    milliseconds, instead of stalling every render later)."""
    try:
        template_compile(kind=kind, source=source)
    except TemplateRenderError as exc:
        return [exc.reason]
    try:
        template_render(kind=kind, source=source, context=sample, budget=budget)
    except TemplateRenderError as exc:
        return [f"{exc.reason} (checked with sample values)"]
    return []
