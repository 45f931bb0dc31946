"""ArmoniK's list filters, evaluated on plain values: every condition kind, operator and bad filter."""

from __future__ import annotations

import datetime as dt

import pytest

from facilitator.control.filters import BadFilter, matches, page_of
from protocol.armonik_api.protos import filters_pb2, sessions_pb2

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
RECORD = {
    1: "session-abc",  # by SessionRawEnumField number, as the sessions service reads them
    2: 1,
    3: ["cpu.small", "gpu.a100"],
    5: NOW,
    6: None,
    7: dt.timedelta(seconds=90),
    12: True,
}


def value_of(field: sessions_pb2.SessionField):
    return RECORD[field.session_raw_field.field]


# (Timestamps and durations are given as datetime and timedelta: our messages live in a descriptor
# pool of their own, and google.protobuf's Timestamp class is the default pool's.)
def condition(number: int, **value_condition) -> sessions_pb2.FilterField:
    return sessions_pb2.FilterField(
        field=sessions_pb2.SessionField(session_raw_field=sessions_pb2.SessionRawField(field=number)), **value_condition
    )


def filters(*ands: list[sessions_pb2.FilterField]) -> sessions_pb2.Filters:
    return sessions_pb2.Filters(**{"or": [sessions_pb2.FiltersAnd(**{"and": conditions}) for conditions in ands]})


def string(op: int, value: str):
    return condition(1, filter_string=filters_pb2.FilterString(value=value, operator=op))


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (string(0, "session-abc"), True),
        (string(1, "session-abc"), False),
        (string(2, "abc"), True),
        (string(3, "abc"), False),
        (string(4, "session-"), True),
        (string(5, "-abc"), True),
        (string(5, "-xyz"), False),
        (condition(2, filter_status=sessions_pb2.FilterStatus(value=1, operator=0)), True),
        (condition(2, filter_status=sessions_pb2.FilterStatus(value=1, operator=1)), False),
        (condition(3, filter_array=filters_pb2.FilterArray(value="gpu.a100", operator=0)), True),
        (condition(3, filter_array=filters_pb2.FilterArray(value="gpu.a100", operator=1)), False),
        (condition(12, filter_boolean=filters_pb2.FilterBoolean(value=True)), True),
        (condition(12, filter_boolean=filters_pb2.FilterBoolean(value=False)), False),
        (condition(5, filter_date=filters_pb2.FilterDate(value=NOW, operator=0)), True),
        (condition(5, filter_date=filters_pb2.FilterDate(value=NOW - dt.timedelta(1), operator=2)), False),
        (condition(5, filter_date=filters_pb2.FilterDate(value=NOW - dt.timedelta(1), operator=5)), True),
        (condition(6, filter_date=filters_pb2.FilterDate(value=NOW, operator=1)), False),  # unset: no match
        (condition(7, filter_duration=filters_pb2.FilterDuration(value=dt.timedelta(seconds=60), operator=4)), True),
        (condition(7, filter_duration=filters_pb2.FilterDuration(value=dt.timedelta(seconds=60), operator=2)), False),
    ],
)
def test_each_condition_kind_and_operator(field: sessions_pb2.FilterField, expected: bool) -> None:
    assert matches(filters([field]), value_of) is expected


def test_an_or_of_ands_matches_when_any_and_does() -> None:
    yes, no = string(0, "session-abc"), string(0, "other")
    assert matches(filters([yes, no], [yes]), value_of)
    assert not matches(filters([yes, no], [no]), value_of)
    assert matches(filters(), value_of) and matches(None, value_of)  # no filter: everything


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        (condition(1), "has no value"),
        (string(9, "x"), "unknown operator 9"),
        (condition(2, filter_string=filters_pb2.FilterString(value="1")), "filter_string on a field that holds int"),
        (condition(12, filter_number=filters_pb2.FilterNumber(value=1)), "holds bool"),
        (condition(1, filter_date=filters_pb2.FilterDate(value=NOW)), "not a date"),
    ],
)
def test_a_filter_its_field_cannot_take_is_refused_with_a_reason(field: sessions_pb2.FilterField, reason: str) -> None:
    with pytest.raises(BadFilter, match=reason):
        matches(filters([field]), value_of)


def test_pages_are_cut_and_capped() -> None:
    records = list(range(10))
    assert page_of(records, 1, 3, most=100) == [3, 4, 5]
    assert page_of(records, 0, 50, most=4) == [0, 1, 2, 3]
    assert page_of(records, 5, 3, most=100) == []
    for page, size in ((-1, 3), (0, 0)):
        with pytest.raises(BadFilter):
            page_of(records, page, size, most=100)
