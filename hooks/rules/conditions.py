"""The dispatcher rules' condition language (EddyDesk "Additional conditions").

Stored as JSON. A condition is one of:

- ``{"all": [condition, ...]}`` — every one holds (an empty list always holds);
- ``{"any": [condition, ...]}`` — at least one holds (an empty list never holds);
- ``{"not": condition}`` — the condition does not hold;
- ``{"field": "event.queue", "op": "equals", "value": "Sales"}`` — a test on one
  field, optionally with ``"ignore_case": true``;
- the same test written as text, ``'event.queue == "Sales"'`` (normalized to
  the object form when saved).

Fields are dotted paths under ``event.``, ``customer.`` or ``call.``;
``customer.customFields.customerType`` reads the custom field customerType
(camelCase names also find their snake_case keys). Operators: ``equals`` (==),
``not_equals`` (!=), ``contains``, ``not_contains``, ``greater_than`` (>),
``greater_or_equal`` (>=), ``less_than`` (<), ``less_or_equal`` (<=), ``in``,
``not_in``, ``regex`` (matches), ``exists``.

Evaluation is safe: a missing field, or a value of the wrong type, makes the
test false (never an error); regexes run with a time limit on a bounded
subject; the size of a condition tree is bounded when it is saved.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import regex

ROOTS = ("event", "customer", "call")
MAX_DEPTH = 8
MAX_NODES = 100
MAX_REGEXES = 10
MAX_PATTERN_LENGTH = 300
MAX_IN_VALUES = 500
MAX_STRING_VALUE = 2000
REGEX_TIMEOUT_SECONDS = 0.05
REGEX_SUBJECT_LIMIT = 10_000

OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "in",
    "not_in",
    "regex",
    "exists",
)
OPERATOR_ALIASES = {
    "==": "equals",
    "=": "equals",
    "eq": "equals",
    "is": "equals",
    "!=": "not_equals",
    "<>": "not_equals",
    "ne": "not_equals",
    "not equals": "not_equals",
    "not contains": "not_contains",
    ">": "greater_than",
    "gt": "greater_than",
    ">=": "greater_or_equal",
    "gte": "greater_or_equal",
    "<": "less_than",
    "lt": "less_than",
    "<=": "less_or_equal",
    "lte": "less_or_equal",
    "not in": "not_in",
    "matches": "regex",
}
OPERATOR_SYMBOLS = {
    "equals": "==",
    "not_equals": "!=",
    "greater_than": ">",
    "greater_or_equal": ">=",
    "less_than": "<",
    "less_or_equal": "<=",
    "regex": "matches",
}
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)+$")
_TEXT = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.\-]*)\s+"
    r"(?P<op>==|!=|<>|>=|<=|>|<|=|not\s+contains|not\s+in|not\s+equals|[a-z_]+)"
    r"(?:\s+(?P<value>.*?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)


class ConditionError(ValueError):
    """Every problem found in a condition tree, each prefixed with where it is."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


# ---------------------------------------------------------------- validating


def conditions_clean(raw: Any) -> dict[str, Any]:
    """Validate and normalize a condition tree (as saved on a rule).

    ``None``, ``""`` and ``{}`` mean "always" (``{"all": []}``); a list means
    ``{"all": list}``; text tests become objects. Raises ConditionError.
    """
    if raw is None or raw == "" or raw == {}:
        return {"all": []}
    if isinstance(raw, str) and raw.strip().startswith(("{", "[")):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConditionError([f"conditions: not valid JSON ({exc.msg} at line {exc.lineno})."])
    if isinstance(raw, list):
        raw = {"all": raw}
    errors: list[str] = []
    counter = {"nodes": 0, "regexes": 0}
    cleaned = _clean(raw, "conditions", 1, errors, counter)
    if counter["nodes"] > MAX_NODES:
        errors.append(f"conditions: at most {MAX_NODES} conditions in one rule.")
    if counter["regexes"] > MAX_REGEXES:
        errors.append(f"conditions: at most {MAX_REGEXES} regex tests in one rule.")
    if errors:
        raise ConditionError(errors)
    if "field" in cleaned:
        cleaned = {"all": [cleaned]}
    return cleaned


def _clean(node: Any, where: str, depth: int, errors: list[str], counter: dict[str, int]) -> dict[str, Any]:
    counter["nodes"] += 1
    if depth > MAX_DEPTH:
        errors.append(f"{where}: nested deeper than {MAX_DEPTH} levels.")
        return {}
    if isinstance(node, str):
        try:
            node = parse_test(node)
        except ConditionError as exc:
            errors.extend(f"{where}: {message}" for message in exc.errors)
            return {}
    if not isinstance(node, dict):
        errors.append(
            f'{where}: expected an object such as {{"all": [...]}} or {{"field": ..., "op": ..., "value": ...}}.'
        )
        return {}
    groups = [key for key in ("all", "any", "not") if key in node]
    if groups:
        if len(node) != 1:
            errors.append(f'{where}: a group has exactly one key ("all", "any" or "not"), found {sorted(node)}.')
            return {}
        key = groups[0]
        if key == "not":
            return {"not": _clean(node["not"], f"{where}.not", depth + 1, errors, counter)}
        items = node[key]
        if not isinstance(items, list):
            errors.append(f"{where}.{key}: expected a list of conditions.")
            return {}
        return {key: [_clean(item, f"{where}.{key}[{i}]", depth + 1, errors, counter) for i, item in enumerate(items)]}
    return _clean_test(node, where, errors, counter)


def _clean_test(node: dict[str, Any], where: str, errors: list[str], counter: dict[str, int]) -> dict[str, Any]:
    unknown = set(node) - {"field", "op", "value", "ignore_case"}
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)}; a test has field, op, value (and ignore_case).")
    path = node.get("field")
    if not isinstance(path, str) or not _PATH.match(path) or path.split(".", 1)[0] not in ROOTS:
        errors.append(
            f"{where}.field: expected a dotted path under {', '.join(r + '.' for r in ROOTS)} e.g. event.queue."
        )
    op_raw = node.get("op")
    op = OPERATOR_ALIASES.get(str(op_raw).strip().lower(), str(op_raw).strip().lower()) if op_raw is not None else None
    if op not in OPERATORS:
        errors.append(f"{where}.op: {op_raw!r} is not one of {', '.join(OPERATORS)}.")
        return {}
    ignore_case = node.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        errors.append(f"{where}.ignore_case: expected true or false.")
    value = node.get("value")
    problem = _value_problem(op, value, "value" in node)
    if problem:
        errors.append(f"{where}.value: {problem}")
    if op == "regex":
        counter["regexes"] += 1
    test: dict[str, Any] = {"field": path, "op": op}
    if op != "exists":
        test["value"] = value
    if ignore_case:
        test["ignore_case"] = True
    return test


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or _is_number(value)


def _value_problem(op: str, value: Any, given: bool) -> str:
    if op == "exists":
        return ""
    if not given:
        return "required."
    if isinstance(value, str) and len(value) > MAX_STRING_VALUE:
        return f"at most {MAX_STRING_VALUE} characters."
    if op in {"equals", "not_equals"}:
        return "" if _is_scalar(value) else "expected a string, number, true/false or null."
    if op in {"contains", "not_contains"}:
        return "" if _is_scalar(value) and value is not None else "expected a string or number."
    if op in {"greater_than", "greater_or_equal", "less_than", "less_or_equal"}:
        return "" if _is_number(value) else "expected a number."
    if op in {"in", "not_in"}:
        if not isinstance(value, list) or not value:
            return 'expected a non-empty list, e.g. ["Sales", "Support"].'
        if len(value) > MAX_IN_VALUES:
            return f"at most {MAX_IN_VALUES} values."
        return "" if all(_is_scalar(item) for item in value) else "expected a list of strings or numbers."
    if op == "regex":
        if not isinstance(value, str) or not value:
            return "expected a regular expression."
        if len(value) > MAX_PATTERN_LENGTH:
            return f"a pattern of at most {MAX_PATTERN_LENGTH} characters."
        try:
            _compile(value, False)
        except regex.error as exc:
            return f"not a valid regular expression ({exc})."
    return ""


def parse_test(text: str) -> dict[str, Any]:
    """``event.queue == "Sales"``, ``call.duration > 60000``, ``event.queue in ["A", "B"]``,
    ``customer.email exists``. The value is JSON; a bare word is a string."""
    match = _TEXT.match(text)
    if not match:
        raise ConditionError([f'cannot read {text!r}; write e.g. event.queue == "Sales".'])
    op_text = " ".join(match["op"].lower().split())
    op = OPERATOR_ALIASES.get(op_text, op_text)
    test: dict[str, Any] = {"field": match["field"], "op": op}
    raw_value = match["value"]
    if op != "exists":
        if raw_value is None:
            raise ConditionError([f"{text!r}: a value is required after {match['op']!r}."])
        try:
            test["value"] = json.loads(raw_value)
        except json.JSONDecodeError:
            test["value"] = raw_value
    elif raw_value:
        raise ConditionError([f"{text!r}: 'exists' takes no value."])
    return test


def describe(node: dict[str, Any]) -> str:
    """A condition tree as one line of text, for the admin's list."""
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        items = node[key]
        if not items:
            return "always" if key == "all" else "never"
        joined = f" {'and' if key == 'all' else 'or'} ".join(describe(item) for item in items)
        return joined if len(items) == 1 else f"({joined})"
    if "not" in node:
        return f"not {describe(node['not'])}"
    if node.get("op") == "exists":
        return f"{node['field']} exists"
    symbol = OPERATOR_SYMBOLS.get(node["op"], node["op"].replace("_", " "))
    suffix = " (ignoring case)" if node.get("ignore_case") else ""
    return f"{node['field']} {symbol} {json.dumps(node.get('value'), ensure_ascii=False)}{suffix}"


# ---------------------------------------------------------------- evaluating

_MISSING = object()
_compiled: dict[tuple[str, bool], Any] = {}


def _compile(pattern: str, ignore_case: bool):
    key = (pattern, ignore_case)
    compiled = _compiled.get(key)
    if compiled is None:
        if len(_compiled) > 1000:
            _compiled.clear()
        compiled = regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)
        _compiled[key] = compiled
    return compiled


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def resolve(context: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING. List items by index (``event.agents.0``)."""
    current: Any = context
    for part in path.split("."):
        if isinstance(current, dict):
            if part in current:
                current = current[part]
            elif _snake(part) in current:
                current = current[_snake(part)]
            else:
                return _MISSING
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


@dataclass
class Check:
    """One test's outcome, for the admin preview."""

    condition: str
    field: str
    found: bool
    actual: Any
    matched: bool
    note: str = ""


@dataclass
class Evaluation:
    matched: bool
    checks: list[Check] = field(default_factory=list)


def evaluate(conditions: dict[str, Any], context: dict[str, Any]) -> Evaluation:
    """Does the context satisfy the (cleaned) conditions? Every test is run and
    reported, so a preview shows which ones matched. Never raises for data."""
    checks: list[Check] = []
    matched = _evaluate(conditions or {"all": []}, context, checks)
    return Evaluation(matched, checks)


def _evaluate(node: dict[str, Any], context: dict[str, Any], checks: list[Check]) -> bool:
    if "all" in node:
        results = [_evaluate(item, context, checks) for item in node["all"]]
        return all(results)
    if "any" in node:
        results = [_evaluate(item, context, checks) for item in node["any"]]
        return any(results)
    if "not" in node:
        return not _evaluate(node["not"], context, checks)
    actual = resolve(context, node["field"])
    found = actual is not _MISSING
    note = ""
    if not found:
        result, note = False, "field missing"
    else:
        try:
            result, note = _test(node["op"], actual, node.get("value"), bool(node.get("ignore_case")))
        except Exception as exc:  # noqa: BLE001 - a test never breaks the dispatcher; it is false
            result, note = False, f"not evaluated: {type(exc).__name__}"
    checks.append(Check(describe(node), node["field"], found, _preview(actual) if found else None, result, note))
    return result


def _preview(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 200 else text[:200] + "…"
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _equal(actual: Any, expected: Any, ignore_case: bool) -> bool | None:
    """True / False when the two are comparable, None when their types differ."""
    kind = _kind(actual)
    if kind != _kind(expected) or kind == "other":
        return None
    if kind == "string" and ignore_case:
        return actual.casefold() == expected.casefold()
    return actual == expected


def _number(value: Any) -> float | None:
    """Numbers, and numeric text (custom fields are stored as text)."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _test(op: str, actual: Any, expected: Any, ignore_case: bool) -> tuple[bool, str]:
    if op == "exists":
        return actual is not None and actual != "" and actual != [] and actual != {}, ""
    if op in {"equals", "not_equals"}:
        same = _equal(actual, expected, ignore_case)
        if same is None:
            if op == "not_equals" and (actual is None or expected is None) and _kind(actual) != "other":
                return True, ""
            return False, f"type {_kind(actual)} is not comparable with {_kind(expected)}"
        return (same if op == "equals" else not same), ""
    if op in {"contains", "not_contains"}:
        if isinstance(actual, str) and isinstance(expected, (str, int, float)) and not isinstance(expected, bool):
            needle, hay = str(expected), actual
            if ignore_case:
                needle, hay = needle.casefold(), hay.casefold()
            found = needle in hay
        elif isinstance(actual, list):
            found = any(_equal(item, expected, ignore_case) for item in actual)
        else:
            return False, f"cannot look inside a {_kind(actual)}"
        return (found if op == "contains" else not found), ""
    if op in {"greater_than", "greater_or_equal", "less_than", "less_or_equal"}:
        number = _number(actual)
        if number is None:
            return False, f"{_kind(actual)} is not a number"
        return {
            "greater_than": number > expected,
            "greater_or_equal": number >= expected,
            "less_than": number < expected,
            "less_or_equal": number <= expected,
        }[op], ""
    if op in {"in", "not_in"}:
        candidates = actual if isinstance(actual, list) else [actual]
        if any(_kind(item) == "other" for item in candidates):
            return False, f"cannot compare a {_kind(actual)}"
        found = any(_equal(item, option, ignore_case) for item in candidates for option in expected)
        return (found if op == "in" else not found), ""
    if op == "regex":
        if not isinstance(actual, str):
            return False, f"a regex needs text, not {_kind(actual)}"
        try:
            hit = _compile(expected, ignore_case).search(actual[:REGEX_SUBJECT_LIMIT], timeout=REGEX_TIMEOUT_SECONDS)
        except TimeoutError:
            return False, f"regex gave up after {REGEX_TIMEOUT_SECONDS} s"
        return hit is not None, ""
    return False, f"unknown operator {op}"
