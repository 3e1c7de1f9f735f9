"""The condition DSL: a truth table per operator, short-circuit, field-level compile errors."""

from __future__ import annotations

import pytest

from flowdapt.builtin.triggers.conditions import compile_condition, resolve_vars
from flowdapt.builtin.triggers.errors import RuleError

EVENT = {
    "type": "com.event.workflow.workflow_finished",
    "source": "compute",
    "data": {
        "workflow": "train",
        "state": "finished",
        "result": {"accuracy": 0.93, "tags": ["nightly", "gpu"], "rows": [10, 20]},
        "name": "swift-otter-1a2b3c4d",
        "error": None,
    },
}


def ev(rule):
    return compile_condition(rule)(EVENT)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # eq / ne
        ({"eq": [{"var": "data.workflow"}, "train"]}, True),
        ({"eq": [{"var": "data.workflow"}, "predict"]}, False),
        ({"ne": [{"var": "data.workflow"}, "predict"]}, True),
        ({"ne": [{"var": "data.state"}, "finished"]}, False),
        ({"eq": [{"var": "data.missing"}, None]}, True),
        # ordering
        ({"gt": [{"var": "data.result.accuracy"}, 0.9]}, True),
        ({"gt": [{"var": "data.result.accuracy"}, 0.93]}, False),
        ({"ge": [{"var": "data.result.accuracy"}, 0.93]}, True),
        ({"lt": [{"var": "data.result.accuracy"}, 0.5]}, False),
        ({"le": [{"var": "data.result.accuracy"}, 0.93]}, True),
        ({"gt": [{"var": "data.missing"}, 1]}, False),  # None > 1 is False, not an error
        ({"lt": ["a", 1]}, False),
        # and / or / not / bool
        ({"and": [True, True]}, True),
        ({"and": [True, False]}, False),
        ({"and": [False, True]}, False),
        ({"and": [False, False]}, False),
        ({"and": []}, True),
        ({"or": [True, True]}, True),
        ({"or": [True, False]}, True),
        ({"or": [False, True]}, True),
        ({"or": [False, False]}, False),
        ({"or": []}, False),
        ({"or": [False, False, True]}, True),
        ({"and": [True, True, False]}, False),
        ({"not": True}, False),
        ({"not": [False]}, True),
        ({"not": {"var": "data.error"}}, True),
        ({"bool": {"var": "data.result.tags"}}, True),
        ({"bool": {"var": "data.error"}}, False),
        ({"bool": [0]}, False),
        # var: nesting, list index, default
        ({"eq": [{"var": "data.result.rows.1"}, 20]}, True),
        ({"eq": [{"var": ["data.missing", "fallback"]}, "fallback"]}, True),
        ({"eq": [{"var": "data.workflow.deeper"}, None]}, True),
        # in / contains / regex
        ({"in": [{"var": "data.workflow"}, ["train", "retrain"]]}, True),
        ({"in": [{"var": "data.workflow"}, ["predict"]]}, False),
        ({"in": ["rain", {"var": "data.workflow"}]}, True),  # substring
        ({"in": ["x", {"var": "data.missing"}]}, False),
        ({"in": [1, "abc"]}, False),  # type mismatch is False, not an error
        ({"contains": [{"var": "data.result.tags"}, "gpu"]}, True),
        ({"contains": [{"var": "data.result.tags"}, "cpu"]}, False),
        ({"contains": [{"var": "data.name"}, "otter"]}, True),
        ({"regex": [{"var": "data.name"}, "^swift-[a-z]+-[0-9a-f]{8}$"]}, True),
        ({"regex": [{"var": "data.workflow"}, "^pre"]}, False),
        ({"regex": [{"var": "data.missing"}, ".*"]}, False),
        ({"regex": [{"var": "data.result.accuracy"}, r"^0\.9"]}, True),
        # the original example (nowcast auto_predict)
        (
            {
                "and": [
                    {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                    {"eq": [{"var": "data.workflow"}, "train"]},
                    {"eq": [{"var": "data.state"}, "finished"]},
                ]
            },
            True,
        ),
    ],
)
def test_truth_table(rule, expected):
    assert bool(ev(rule)) is expected


def test_and_or_return_the_deciding_value_like_python():
    assert ev({"and": [1, "x", {"var": "data.workflow"}]}) == "train"
    assert ev({"or": [0, None, {"var": "data.state"}, "later"]}) == "finished"
    assert ev({"and": [1, 0, 2]}) == 0


def test_and_short_circuits():
    calls = []
    # A dynamic regex pattern that is evaluated only if reached: track via a custom mapping.
    class Tracking(dict):
        def get(self, key, default=None):
            calls.append(key)
            return super().get(key, default)

    data = Tracking(a=False, b=True)
    compile_condition({"and": [{"var": "a"}, {"var": "b"}, {"var": "b"}]})(data)
    assert calls == ["a"]
    calls.clear()
    compile_condition({"or": [{"var": "b"}, {"var": "a"}]})(data)
    assert calls == ["b"]


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        ({"foo": [1, 2]}, "spec.rule.foo", "unknown operator 'foo'"),
        ({"and": [{"eq": [1]}]}, "spec.rule.and[0].eq", "eq takes 2 arguments, got 1"),
        ({"and": [True, {"eq": [1, 2, 3]}]}, "spec.rule.and[1].eq", "eq takes 2 arguments, got 3"),
        ({"not": [1, 2]}, "spec.rule.not", "not takes 1 argument, got 2"),
        ({"var": ["a", "b", "c"]}, "spec.rule.var", "var takes 1 or 2 arguments, got 3"),
        ({"eq": [1, 1], "ne": [1, 2]}, "spec.rule", "exactly one operator"),
        ({"regex": [{"var": "x"}, "("]}, "spec.rule.regex[1]", "invalid regular expression"),
        ({"or": [{"not": {"bogus": 1}}]}, "spec.rule.or[0].not.bogus", "unknown operator 'bogus'"),
        ({"var": 5}, "spec.rule.var", "dotted path"),
    ],
)
def test_compile_errors_name_the_field(rule, field, message):
    with pytest.raises(RuleError) as info:
        compile_condition(rule)
    assert info.value.field == field
    assert message in info.value.reason


def test_resolve_vars_takes_values_from_the_event():
    params = {"model": {"var": "data.result"}, "fixed": 3, "nested": [{"var": "data.workflow"}, {"k": {"var": ["x", 7]}}]}
    assert resolve_vars(params, EVENT) == {
        "model": EVENT["data"]["result"],
        "fixed": 3,
        "nested": ["train", {"k": 7}],
    }
