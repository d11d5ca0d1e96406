"""Store URLs in messages, reprs and logs never show their password; malformed ones are
a typed error naming the problem (issue 13, items 9 and 10)."""

from __future__ import annotations

import pytest

import duro
from duro.store._url import hide_password, redact


@pytest.mark.parametrize("url, shown", [
    ("postgresql://app:s3cret@db/x", "postgresql://app:***@db/x"),
    ("postgres://app:p@ss@h1:5432,h2:5433/x?schema=s", "postgres://app:***@h1:5432,h2:5433/x?schema=s"),
    ("postgresql://app@db/x?sslmode=require&password=s3cret", "postgresql://app@db/x?sslmode=require&password=***"),
    ("postgresql://app:s3cret@[::1/x", "postgresql://app:***@[::1/x"),
    ("host=db password=s3cret dbname=x", "host=db password=*** dbname=x"),
    ("postgresql://app@db/x", "postgresql://app@db/x"),
    ("sqlite:///duro.db", "sqlite:///duro.db"),
    ("not a url", "not a url"),
])
def test_redact_hides_every_form_of_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_hide_password_removes_quoted_pieces_of_the_password() -> None:
    url = "postgresql://app:s3%ZZcret@db/x"
    assert hide_password('invalid percent-encoded token: "s3%ZZcret"', url) == \
        'invalid percent-encoded token: "***"'


def test_reprs_of_engines_and_stores_hide_the_password() -> None:
    engine = duro.Engine("postgresql://app:s3cret@localhost:1/x", worker=False)
    assert "s3cret" not in repr(engine) and "app:***@" in repr(engine)
    assert "s3cret" not in repr(engine.store) and "app:***@" in repr(engine.store)


@pytest.mark.parametrize("url, problem", [
    ("postgresql://app:s3cret@[::1/x", "Invalid IPv6 URL"),
    ("postgresql://app:s3cret@db:notaport/x", "port 'notaport'"),
    ("postgresql://app:s3cret@db:70000/x", "port '70000'"),
    ("postgresql://app:s3cret@db/x?shema=typo", "shema"),
    ("postgresql://app:s3%ZZcret@db/x", "percent-encoded"),
    ("postgresql://app:s3cret@db/x?pool_size=many", "pool_size"),
    ("mysql://app:s3cret@db/x", "unsupported store URL"),
    ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
])
def test_malformed_store_urls_are_typed_errors_without_the_password(url: str,
                                                                    problem: str) -> None:
    with pytest.raises(duro.InvalidStoreURLError, match=problem) as info:
        duro.Engine(url)
    assert isinstance(info.value, duro.StoreError) and isinstance(info.value, ValueError)
    assert "s3cret" not in str(info.value) and "s3%ZZ" not in str(info.value)


def test_a_multi_host_url_is_accepted() -> None:
    engine = duro.Engine(
        "postgresql://app:s3cret@h1:5432,h2:5433/x?target_session_attrs=read-write",
        worker=False)
    assert "h1:5432,h2:5433" in repr(engine)
