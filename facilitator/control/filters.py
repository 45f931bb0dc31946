"""ArmoniK's list filters (an OR of ANDs of field conditions), sorting and paging.

Every List call of the API carries ``filters``: ``or`` is a list of ``FiltersAnd``, each an
``and`` list of ``FilterField`` (a field and one condition on it: string, number, boolean,
status, date, array or duration). A record matches when any AND matches; an AND matches when
every one of its conditions does; no filter at all matches everything, as in ArmoniK.

The service module says what a field is on its records (``value_of``); here is only the logic, on
plain Python values: ``str``, ``int``, ``bool``, ``datetime`` (``None``: not set), ``timedelta``,
``list[str]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from protocol.errors import ProtocolError

__all__ = ["BadFilter", "listed", "matches", "page_of"]

T = TypeVar("T")

# Operator numbers, as ArmoniK's FilterStringOperator, FilterNumberOperator … define them.
_STRING = {
    0: lambda v, x: v == x,
    1: lambda v, x: v != x,
    2: lambda v, x: x in v,
    3: lambda v, x: x not in v,
    4: lambda v, x: v.startswith(x),
    5: lambda v, x: v.endswith(x),
}
_ORDERED = {  # number, date and duration operators share their numbering
    0: lambda v, x: v == x,
    1: lambda v, x: v != x,
    2: lambda v, x: v < x,
    3: lambda v, x: v <= x,
    4: lambda v, x: v >= x,
    5: lambda v, x: v > x,
}
_EQUALITY = {0: lambda v, x: v == x, 1: lambda v, x: v != x}
_ARRAY = {0: lambda v, x: x in v, 1: lambda v, x: x not in v}
_BOOLEAN = {0: lambda v, x: v == x}


class BadFilter(ProtocolError):
    """A filter names no field, an operator that does not exist, or a condition its field cannot take."""

    code = "bad_filter"


def matches(filters: Any, value_of: Callable[[Any], Any]) -> bool:
    """Whether the record ``value_of`` reads matches ``filters`` (an ArmoniK ``Filters`` message)."""
    ors = list(filters.__getattribute__("or")) if filters is not None else []
    if not ors:
        return True
    return any(all(_condition(f, value_of) for f in getattr(conjunction, "and")) for conjunction in ors)


def _condition(filter_field: Any, value_of: Callable[[Any], Any]) -> bool:
    kind = filter_field.WhichOneof("value_condition")
    if kind is None:
        raise BadFilter("a filter condition has no value (filter_string, filter_number …)")
    value = value_of(filter_field.field)
    condition = getattr(filter_field, kind)
    if kind == "filter_string":
        return _apply(_STRING, condition.operator, _as(str, value, kind), condition.value)
    if kind == "filter_number":
        return _apply(_ORDERED, condition.operator, _as(int, value, kind), condition.value)
    if kind == "filter_boolean":
        return _apply(_BOOLEAN, condition.operator, _as(bool, value, kind), condition.value)
    if kind == "filter_status":
        return _apply(_EQUALITY, condition.operator, _as(int, value, kind), condition.value)
    if kind == "filter_array":
        return _apply(_ARRAY, condition.operator, _as(list, value, kind), condition.value)
    if kind == "filter_date":
        if value is not None and not isinstance(value, dt.datetime):
            raise BadFilter(f"{kind} on a field that is not a date")
        wanted = condition.value.ToDatetime(tzinfo=dt.UTC)
        return value is not None and _apply(_ORDERED, condition.operator, value, wanted)
    if kind == "filter_duration":
        if value is not None and not isinstance(value, dt.timedelta):
            raise BadFilter(f"{kind} on a field that is not a duration")
        return value is not None and _apply(_ORDERED, condition.operator, value, condition.value.ToTimedelta())
    raise BadFilter(f"unknown filter condition {kind}")


def _as(kind: type, value: Any, condition: str) -> Any:
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise BadFilter(f"{condition} on a field that holds {type(value).__name__}")
    return value


def _apply(operators: dict[int, Callable[[Any, Any], bool]], operator: int, value: Any, wanted: Any) -> bool:
    try:
        return operators[operator](value, wanted)
    except KeyError:
        raise BadFilter(f"unknown operator {operator}") from None


def listed(
    records: Sequence[T], request: Any, value_of: Callable[[T, Any], Any], most: int
) -> tuple[list[T], int, int]:
    """A List call's answer over ``records``: its page, the page size used and the total matched.

    ``request`` is any ArmoniK List request (``filters``, ``sort``, ``page``, ``page_size``);
    ``value_of(record, field)`` reads a field message on a record. Unset values sort first.
    """
    chosen = [r for r in records if matches(request.filters, lambda field, r=r: value_of(r, field))]
    if request.HasField("sort") and request.sort.HasField("field"):
        chosen.sort(
            key=lambda r: _sort_key(value_of(r, request.sort.field)),
            reverse=request.sort.direction == 2,  # SORT_DIRECTION_DESC
        )
    return page_of(chosen, request.page, request.page_size, most), min(request.page_size, most), len(chosen)


def _sort_key(value: Any) -> tuple:
    return (value is not None, tuple(value) if isinstance(value, list) else value)


def page_of(records: Sequence[T], page: int, page_size: int, most: int) -> list[T]:
    """Page ``page`` (from 0) of ``records``, ``page_size`` a page; never more than ``most``.

    Raises:
        BadFilter: a negative page, or a page size below 1.
    """
    if page < 0:
        raise BadFilter(f"page must be 0 or more, not {page}")
    if page_size < 1:
        raise BadFilter(f"page_size must be 1 or more, not {page_size}")
    size = min(page_size, most)
    return list(records[page * size : (page + 1) * size])
