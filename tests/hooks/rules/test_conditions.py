"""The rules' condition language: validation, each operator, missing fields, wrong types, limits."""

import time

import pytest

from hooks.rules.conditions import ConditionError, conditions_clean, describe, evaluate, parse_test

CONTEXT = {
    "event": {
        "type": "conversation.abandoned",
        "queue": "Sales",
        "timeInQueue": 134,
        "tags": ["vip", "callback"],
        "agent": {"name": "Agent John"},
        "isOutbound": True,
        "nothing": None,
        "empty": "",
        "agents": [{"name": "A"}, {"name": "B"}],
    },
    "customer": {
        "customer_id": "K-1001",
        "name": "Maria Andersson",
        "custom_fields": {"customerType": "unlimited", "level": "3"},
    },
    "call": {"duration": 134000, "callType": "Inbound", "body": "Call type: Inbound\nreferred by: +46 70"},
}


def check(test, context=CONTEXT):
    return evaluate(conditions_clean(test), context).matched


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        # equals / not equals
        ({"field": "event.queue", "op": "equals", "value": "Sales"}, True),
        ({"field": "event.queue", "op": "equals", "value": "sales"}, False),
        ({"field": "event.queue", "op": "equals", "value": "sales", "ignore_case": True}, True),
        ({"field": "event.timeInQueue", "op": "equals", "value": 134.0}, True),
        ({"field": "event.isOutbound", "op": "equals", "value": True}, True),
        ({"field": "event.nothing", "op": "equals", "value": None}, True),
        ({"field": "event.queue", "op": "not_equals", "value": "Support"}, True),
        ({"field": "event.queue", "op": "not_equals", "value": "Sales"}, False),
        ({"field": "event.nothing", "op": "not_equals", "value": "x"}, True),
        # contains
        ({"field": "event.queue", "op": "contains", "value": "al"}, True),
        ({"field": "event.queue", "op": "contains", "value": "AL", "ignore_case": True}, True),
        ({"field": "event.tags", "op": "contains", "value": "vip"}, True),
        ({"field": "event.tags", "op": "contains", "value": "nope"}, False),
        ({"field": "event.queue", "op": "not_contains", "value": "xyz"}, True),
        ({"field": "call.body", "op": "contains", "value": "referred by"}, True),
        # greater / less
        ({"field": "call.duration", "op": "greater_than", "value": 60000}, True),
        ({"field": "call.duration", "op": "greater_than", "value": 134000}, False),
        ({"field": "call.duration", "op": "greater_or_equal", "value": 134000}, True),
        ({"field": "call.duration", "op": "less_than", "value": 60000}, False),
        ({"field": "call.duration", "op": "less_or_equal", "value": 134000}, True),
        ({"field": "customer.customFields.level", "op": "greater_than", "value": 2}, True),  # numeric text
        # in
        ({"field": "event.queue", "op": "in", "value": ["Sales", "Support"]}, True),
        ({"field": "event.queue", "op": "in", "value": ["Support"]}, False),
        ({"field": "event.tags", "op": "in", "value": ["callback", "x"]}, True),
        ({"field": "event.queue", "op": "not_in", "value": ["Support"]}, True),
        ({"field": "event.timeInQueue", "op": "in", "value": [1, 134]}, True),
        # regex
        ({"field": "call.body", "op": "regex", "value": r"^referred by: \+46"}, False),
        ({"field": "call.body", "op": "regex", "value": r"(?m)^referred by: \+46"}, True),
        ({"field": "event.queue", "op": "regex", "value": "^s", "ignore_case": True}, True),
        # exists
        ({"field": "event.queue", "op": "exists"}, True),
        ({"field": "event.nothing", "op": "exists"}, False),
        ({"field": "event.empty", "op": "exists"}, False),
        ({"field": "event.missing", "op": "exists"}, False),
        # paths
        ({"field": "customer.customFields.customerType", "op": "equals", "value": "unlimited"}, True),
        ({"field": "customer.customerId", "op": "equals", "value": "K-1001"}, True),
        ({"field": "event.agent.name", "op": "equals", "value": "Agent John"}, True),
        ({"field": "event.agents.1.name", "op": "equals", "value": "B"}, True),
        ({"field": "event.agents.7.name", "op": "exists"}, False),
    ],
)
def test_operators(test, expected):
    assert check(test) is expected


@pytest.mark.parametrize(
    "op_value",
    [
        ("equals", "x"),
        ("not_equals", "x"),
        ("contains", "x"),
        ("not_contains", "x"),
        ("greater_than", 1),
        ("less_than", 1),
        ("in", ["x"]),
        ("not_in", ["x"]),
        ("regex", "."),
        ("exists", None),
    ],
)
def test_missing_field_is_false_for_every_operator(op_value):
    op, value = op_value
    test = {"field": "event.doesNotExist", "op": op, "value": value}
    result = evaluate(conditions_clean(test), CONTEXT)
    assert result.matched is False
    assert result.checks[0].found is False and result.checks[0].note == "field missing"
    # a missing branch of the tree, and a missing root, behave the same
    assert check({**test, "field": "customer.nope.deeper"}) is False
    assert check(test, {"event": None}) is False
    assert check(test, {}) is False


@pytest.mark.parametrize(
    "test",
    [
        {"field": "event.queue", "op": "greater_than", "value": 1},  # text vs number
        {"field": "event.tags", "op": "less_than", "value": 1},  # list
        {"field": "event.agent", "op": "equals", "value": "Agent John"},  # object
        {"field": "event.timeInQueue", "op": "equals", "value": "134"},  # number vs text
        {"field": "event.isOutbound", "op": "equals", "value": 1},  # bool is not a number
        {"field": "event.queue", "op": "not_equals", "value": 5},  # not comparable: false, not true
        {"field": "call.duration", "op": "contains", "value": "13"},  # number has no inside
        {"field": "call.duration", "op": "regex", "value": "13"},  # regex needs text
        {"field": "event.agent", "op": "in", "value": ["x"]},
        {"field": "event.agent", "op": "not_in", "value": ["x"]},
    ],
)
def test_wrong_types_are_false_not_errors(test):
    result = evaluate(conditions_clean(test), CONTEXT)
    assert result.matched is False
    assert result.checks[0].found is True
    assert result.checks[0].note


def test_all_any_not_and_trace():
    conditions = {
        "all": [
            'event.queue == "Sales"',
            {"any": ["call.duration > 999999", "customer.customFields.customerType == unlimited"]},
            {"not": {"field": "event.queue", "op": "equals", "value": "Support"}},
        ]
    }
    result = evaluate(conditions_clean(conditions), CONTEXT)
    assert result.matched is True
    assert [(c.condition, c.matched) for c in result.checks] == [
        ('event.queue == "Sales"', True),
        ("call.duration > 999999", False),
        ('customer.customFields.customerType == "unlimited"', True),
        ('event.queue == "Support"', False),
    ]
    assert result.checks[0].actual == "Sales"


def test_empty_conditions_always_hold_and_empty_any_never():
    for empty in (None, "", {}, [], {"all": []}):
        assert conditions_clean(empty) == {"all": []}
        assert evaluate(conditions_clean(empty), {}).matched is True
    assert check({"any": []}) is False


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ('event.queue == "Sales"', {"field": "event.queue", "op": "equals", "value": "Sales"}),
        ("event.queue == Sales", {"field": "event.queue", "op": "equals", "value": "Sales"}),
        ("call.duration > 60000", {"field": "call.duration", "op": "greater_than", "value": 60000}),
        ("call.duration >= 1.5", {"field": "call.duration", "op": "greater_or_equal", "value": 1.5}),
        ('event.queue in ["A", "B"]', {"field": "event.queue", "op": "in", "value": ["A", "B"]}),
        ('event.queue not in ["A"]', {"field": "event.queue", "op": "not_in", "value": ["A"]}),
        ("event.queue NOT CONTAINS x", {"field": "event.queue", "op": "not_contains", "value": "x"}),
        (r'call.body matches "^Call"', {"field": "call.body", "op": "regex", "value": "^Call"}),
        ("customer.email exists", {"field": "customer.email", "op": "exists"}),
        ("event.isOutbound != true", {"field": "event.isOutbound", "op": "not_equals", "value": True}),
    ],
)
def test_text_form(text, parsed):
    assert parse_test(text) == parsed
    assert conditions_clean(text) == {"all": [parsed]}


def test_json_text_and_single_test_are_normalized():
    assert conditions_clean('{"any": ["event.queue == Sales"]}') == {
        "any": [{"field": "event.queue", "op": "equals", "value": "Sales"}]
    }
    assert conditions_clean({"field": "call.duration", "op": ">", "value": 5}) == {
        "all": [{"field": "call.duration", "op": "greater_than", "value": 5}]
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"field": "queue", "op": "equals", "value": "x"}, "conditions.field: expected a dotted path"),
        ({"field": "order.total", "op": "equals", "value": 1}, "conditions.field"),
        ({"field": "event.queue", "op": "like", "value": "x"}, "conditions.op: 'like' is not one of"),
        ({"field": "event.queue", "op": "equals"}, "conditions.value: required."),
        ({"field": "event.queue", "op": "equals", "value": ["x"]}, "conditions.value: expected a string, number"),
        ({"field": "call.duration", "op": ">", "value": "5"}, "conditions.value: expected a number."),
        ({"field": "event.queue", "op": "in", "value": "Sales"}, "conditions.value: expected a non-empty list"),
        ({"field": "event.queue", "op": "in", "value": [{"a": 1}]}, "expected a list of strings or numbers"),
        ({"field": "event.queue", "op": "regex", "value": "(unclosed"}, "not a valid regular expression"),
        ({"field": "event.queue", "op": "regex", "value": "a" * 301}, "at most 300"),
        ({"field": "event.queue", "op": "equals", "value": 1, "colour": "red"}, "unknown keys ['colour']"),
        ({"all": "event.queue == x"}, "conditions.all: expected a list"),
        ({"all": [], "any": []}, "a group has exactly one key"),
        ({"all": [42]}, "conditions.all[0]: expected an object"),
        ({"all": ["gibberish"]}, "conditions.all[0]: cannot read 'gibberish'"),
        ("{not json", "conditions: not valid JSON"),
        ({"field": "event.queue", "op": "equals", "value": 1, "ignore_case": "yes"}, "ignore_case"),
    ],
)
def test_invalid_conditions_are_rejected_with_where(raw, message):
    with pytest.raises(ConditionError) as caught:
        conditions_clean(raw)
    assert any(message in error for error in caught.value.errors), caught.value.errors


def test_all_errors_reported_at_once():
    with pytest.raises(ConditionError) as caught:
        conditions_clean({"all": [{"field": "x", "op": "equals", "value": 1}, {"field": "event.a", "op": "??"}]})
    assert len(caught.value.errors) == 2
    assert caught.value.errors[0].startswith("conditions.all[0].field")
    assert caught.value.errors[1].startswith("conditions.all[1].op")


def test_size_limits():
    deep = "event.a == 1"
    for _ in range(9):
        deep = {"not": deep}
    with pytest.raises(ConditionError, match="nested deeper"):
        conditions_clean(deep)
    with pytest.raises(ConditionError, match="at most 100 conditions"):
        conditions_clean({"any": ["event.a == 1"] * 101})
    with pytest.raises(ConditionError, match="at most 10 regex"):
        conditions_clean({"any": [{"field": "event.a", "op": "regex", "value": "x"}] * 11})


def test_catastrophic_regex_times_out_as_false():
    conditions = conditions_clean({"field": "event.text", "op": "regex", "value": "(a|aa)+$"})
    started = time.monotonic()
    result = evaluate(conditions, {"event": {"text": "a" * 40 + "b"}})
    assert time.monotonic() - started < 1
    assert result.matched is False
    assert "gave up" in result.checks[0].note


def test_regex_subject_is_bounded():
    conditions = conditions_clean({"field": "event.text", "op": "regex", "value": "needle"})
    assert evaluate(conditions, {"event": {"text": "x" * 20_000 + "needle"}}).matched is False
    assert evaluate(conditions, {"event": {"text": "needle" + "x" * 20_000}}).matched is True


def test_describe():
    conditions = conditions_clean(
        {"all": ["event.queue == Sales", {"any": ["call.duration > 5", {"not": "customer.email exists"}]}]}
    )
    assert describe(conditions) == '(event.queue == "Sales" and (call.duration > 5 or not customer.email exists))'
    assert describe(conditions_clean(None)) == "always"
