"""The pure parts of search attributes and listings: which attributes are allowed, how
values are matched, the cursor, and which query lists a page (issue 15, item 7)."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from duro._history import EventKind, NewEvent, RunStartedMeta, SearchAttributesMeta
from duro._search import (
    MAX_ATTRIBUTES,
    RunFilter,
    check_search_attributes,
    check_upsert,
    decode_cursor,
    encode_cursor,
    epoch,
)
from duro.errors import InvalidArgumentError
from duro.store._rules import attribute_params, copied_attributes, index_value, list_query


def test_allowed_attributes_are_copied_and_keep_their_types() -> None:
    given = {"customer": "acme", "amount": 12, "score": 0.5, "vip": True, "tier.v2-x": ""}
    checked = check_search_attributes(given)
    assert checked == given and checked is not given
    assert type(checked["vip"]) is bool and type(checked["amount"]) is int
    assert check_search_attributes(None) is None
    assert check_search_attributes({}) is None
    # Nothing to remove at a start: a None value is left out.
    assert check_search_attributes({"a": None, "b": 1}) == {"b": 1}
    assert check_search_attributes({"a": None}) is None
    assert check_upsert({"a": None, "b": "x"}) == {"a": None, "b": "x"}
    assert check_search_attributes({"k" * 64: 2**63 - 1, "_": -(2**63)}) is not None
    assert check_search_attributes({"s": "é" * 500}) == {"s": "é" * 500}  # 1000 bytes


@pytest.mark.parametrize("attributes, named", [
    ({"": 1}, "''"),
    ({"1st": 1}, "'1st'"),
    ({"has space": 1}, "'has space'"),
    ({"k" * 65: 1}, "'kkk"),
    ({5: 1}, "5"),
    ({"nested": {"a": 1}}, "'nested'"),
    ({"listed": [1]}, "'listed'"),
    ({"nan": math.nan}, "'nan'"),
    ({"inf": -math.inf}, "'inf'"),
    ({"big": 2**63}, "'big'"),
    ({"small": -(2**63) - 1}, "'small'"),
    ({"long": "x" * 1001}, "'long'"),
    ({"wide": "é" * 501}, "'wide'"),
    ({"nul": "a\x00b"}, "'nul'"),
    ({"surrogate": "\ud800"}, "'surrogate'"),
    ({"when": datetime.now(UTC)}, "'when'"),
    ({"raw": b"bytes"}, "'raw'"),
])
def test_refused_attributes_name_their_key(attributes: dict[object, object], named: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        check_search_attributes(attributes)
    assert named in str(err.value)
    with pytest.raises(InvalidArgumentError):
        check_upsert(attributes)


def test_refused_shapes() -> None:
    with pytest.raises(InvalidArgumentError, match="mapping"):
        check_search_attributes([("a", 1)])
    with pytest.raises(InvalidArgumentError, match="at most 100"):
        check_search_attributes({f"k{i}": i for i in range(MAX_ATTRIBUTES + 1)})
    with pytest.raises(InvalidArgumentError, match="mapping"):
        check_upsert(None)


def test_values_match_as_python_compares_them_but_types_stay_apart() -> None:
    assert index_value(12) == index_value(12.0) == "n:12"
    assert index_value(-0.0) == index_value(0)
    assert index_value(1e20) == index_value(10**20)
    assert index_value(0.1) == "n:0.1" and index_value(2.5) != index_value(2)
    assert index_value(2**53 + 1) != index_value(float(2**53 + 1))  # as in Python
    assert len({index_value(v) for v in (12, "12", True, 1, "true", "b:true")}) == 6
    assert index_value(True) != index_value(1) and index_value(False) != index_value(0)
    assert index_value("x") == "s:x"


def test_attribute_rows_keep_values_as_json_and_list_removals() -> None:
    params = attribute_params({"a": 12.0, "b": "x", "c": None, "d": False})
    assert params == {"keys": ["a", "b", "d"], "values": ["n:12", "s:x", "b:false"],
                      "datas": ["12.0", '"x"', "false"], "deleted": ["c"]}
    assert [orjson.loads(d) for d in params["datas"]] == [12.0, "x", False]


def test_copied_attributes_fold_the_start_and_the_upserts_in_order() -> None:
    start = NewEvent(kind=EventKind.RUN_STARTED, ts=1.0, meta=RunStartedMeta(
        search_attributes={"a": 1, "b": "x"}).encode())
    up1 = NewEvent(kind=EventKind.SEARCH_ATTRIBUTES_UPSERTED, ts=2.0,
                   meta=SearchAttributesMeta(attributes={"b": None, "c": True}).encode())
    up2 = NewEvent(kind=EventKind.SEARCH_ATTRIBUTES_UPSERTED, ts=3.0,
                   meta=SearchAttributesMeta(attributes={"a": 2}).encode())
    step = NewEvent(kind=EventKind.STEP_COMPLETED, ts=2.5, op=1, data=b"1")
    assert copied_attributes([start, up1, step, up2]) == {"a": 2, "c": True}
    assert copied_attributes([start]) == {"a": 1, "b": "x"}
    assert copied_attributes([NewEvent(kind=EventKind.RUN_STARTED, ts=1.0)]) == {}


def test_meta_round_trips_and_plain_starts_keep_no_meta() -> None:
    meta = RunStartedMeta(search_attributes={"a": 1})
    assert RunStartedMeta.decode(meta.encode()) == meta
    assert RunStartedMeta(search_attributes={}).encode() is None
    child = RunStartedMeta(parent_run_id="p", parent_op=3)
    encoded = child.encode()
    assert encoded is not None and b"search_attributes" not in encoded
    upsert = SearchAttributesMeta(attributes={"a": None, "b": 2.5})
    assert SearchAttributesMeta.decode(upsert.encode()) == upsert
    assert SearchAttributesMeta.decode(b"[1]").attributes == {}


def test_cursor_round_trips_exactly_and_is_url_safe() -> None:
    for created_at, run_id in [(1_700_000_000.123456789, "r-1"), (0.1 + 0.2, "ü/+="),
                               (5, "x" * 1000), (-1.5, "z")]:
        cursor = encode_cursor(created_at, run_id)
        assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789-_")
        assert decode_cursor(cursor) == (float(created_at), run_id)


@pytest.mark.parametrize("cursor", [
    "", "not a cursor!", "====", "abc", None, 12,
    base64.urlsafe_b64encode(b'[2, 1.0, "r"]').decode().rstrip("="),  # another version
    base64.urlsafe_b64encode(b'[true, 1.0, "r"]').decode().rstrip("="),
    base64.urlsafe_b64encode(b'[1, "1.0", "r"]').decode().rstrip("="),
    base64.urlsafe_b64encode(b'[1, 1.0, ""]').decode().rstrip("="),
    base64.urlsafe_b64encode(b'[1, 1.0]').decode().rstrip("="),
    base64.urlsafe_b64encode(b'{"a": 1}').decode().rstrip("="),
    "A" * 2001,
])
def test_malformed_cursors_are_refused(cursor: object) -> None:
    with pytest.raises(InvalidArgumentError, match="malformed cursor"):
        decode_cursor(cursor)


def test_times_are_aware_datetimes_or_epoch_seconds() -> None:
    at = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert epoch(at, "t") == at.timestamp()
    assert epoch(1.5, "t") == 1.5 and epoch(2, "t") == 2.0 and epoch(None, "t") is None
    for bad in (datetime(2024, 5, 1), True, math.inf, "2024-05-01"):
        with pytest.raises(InvalidArgumentError, match="t must be"):
            epoch(bad, "t")  # type: ignore[arg-type]


def test_run_filter_checks_everything_before_a_read() -> None:
    where = RunFilter.of(status="failed", name="wf", created_after=10, id_prefix="ord-",
                         search_attributes={"amount": 12})
    assert where.store_args() == {
        "status": "failed", "name": "wf", "created_after": 10.0, "created_before": None,
        "id_prefix": "ord-", "attributes": {"amount": 12}}
    assert RunFilter.of().store_args()["attributes"] is None
    for bad in ({"status": "finished"}, {"name": ""}, {"id_prefix": "a\nb"},
                {"created_before": datetime(2024, 1, 1)},
                {"search_attributes": {"amount": None}},
                {"search_attributes": {"bad key": 1}}):
        with pytest.raises(InvalidArgumentError):
            RunFilter.of(**bad)  # type: ignore[arg-type]


def _plan(**kw: object) -> tuple[str, dict[str, object]]:
    args: dict[str, object] = {"status": None, "name": None, "created_after": None,
                               "created_before": None, "id_prefix": None, "attributes": None,
                               "after": None, "limit": 10}
    args.update(kw)
    return list_query(**args)  # type: ignore[arg-type]


def test_list_query_drives_the_page_by_the_most_selective_index() -> None:
    assert _plan()[0] == "list_runs"
    assert _plan(status="failed")[0] == "list_runs_by_status"
    assert _plan(status="failed", name="wf")[0] == "list_runs_by_name"
    assert _plan(name="wf", id_prefix="x")[0] == "list_runs_by_name"
    query, params = _plan(status="failed", attributes={"a": 1, "b": "x", "c": True})
    assert query == "list_runs_by_attribute"
    assert (params["key"], params["value"], params["n_more"]) == ("a", "n:1", 2)
    assert (params["more_keys"], params["more_values"]) == (["b", "c"], ["s:x", "b:true"])
    assert params["status"] == "failed"


def test_list_query_bounds_the_keyset_by_the_cursor_and_the_time_range() -> None:
    params = _plan()[1]
    assert (params["upper_at"], params["upper_id"], params["lower_at"]) == (
        math.inf, "", -math.inf)
    params = _plan(after=(5.0, "r2"), created_after=1.0)[1]
    assert (params["upper_at"], params["upper_id"], params["lower_at"]) == (5.0, "r2", 1.0)
    # created_before is strict: (before, "") is below every run id at that instant.
    params = _plan(created_before=4.0, after=(5.0, "r2"))[1]
    assert (params["upper_at"], params["upper_id"]) == (4.0, "")
    params = _plan(created_before=6.0, after=(5.0, "r2"))[1]
    assert (params["upper_at"], params["upper_id"]) == (5.0, "r2")
    params = _plan(created_before=5.0, after=(5.0, "r2"))[1]
    assert (params["upper_at"], params["upper_id"]) == (5.0, "")
    assert _plan(limit=7)[1]["limit"] == 7
