"""API tokens (issue 16, item 3): made, verified, listed and revoked through the client,
on both stores; only a hash of each secret is stored; every refusal stores nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import duro
from duro.errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError
from duro.testing import ManualClock
from tests.conftest import run


def test_a_token_is_made_verified_and_revoked(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(any_db_url) as client:
            secret, info = await client.tokens.create("hook", scope="write",
                                                      namespace="acme")
            assert secret.startswith(f"duro_{info.token_id}_")
            assert (info.name, info.scope, info.namespace) == ("hook", "write", "acme")
            assert info.revoked_at is None and info.expires_at is None
            # Its scope and those below it.
            assert (await client.tokens.verify(secret, scope="write")).token_id == \
                info.token_id
            assert (await client.tokens.verify(secret, scope="read")).namespace == "acme"
            with pytest.raises(PermissionDeniedError, match=r"'write'.*'admin'"):
                await client.tokens.verify(secret, scope="admin")
            # Anything else is one and the same refusal.
            forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")
            unknown = "duro_0123456789abcdef_" + secret.split("_", 2)[2]
            for bad in (forged, unknown, "", "Bearer " + secret, secret + "x",
                        secret.upper(), "duro_x_y", "\x00"):
                with pytest.raises(AuthenticationError, match=r"^invalid API token$"):
                    await client.tokens.verify(bad)
            revoked = await client.tokens.revoke(info.token_id)
            assert revoked.revoked_at is not None
            with pytest.raises(AuthenticationError):
                await client.tokens.verify(secret)
            with pytest.raises(InvalidArgumentError, match="no live token"):
                await client.tokens.revoke(info.token_id)
            with pytest.raises(InvalidArgumentError, match="no live token"):
                await client.tokens.revoke("0123456789abcdef")

    run(main())


def test_a_token_expires(any_db_url: str) -> None:
    async def main() -> None:
        clock = ManualClock()
        async with duro.Client(any_db_url, clock=clock) as client:
            secret, info = await client.tokens.create("short", expires_in=60)
            assert info.expires_at is not None
            await client.tokens.verify(secret)
            clock.advance(59)
            await client.tokens.verify(secret)
            clock.advance(1)
            with pytest.raises(AuthenticationError):
                await client.tokens.verify(secret)

    run(main())


def test_tokens_are_listed_by_namespace_without_their_secrets(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(any_db_url) as client:
            made = [await client.tokens.create(f"t{i}", namespace=ns)
                    for i, ns in enumerate(["a", "b", "a"])]
            listed = await client.tokens.list()
            assert [t.name for t in listed] == ["t0", "t1", "t2"]
            assert [t.name for t in await client.tokens.list(namespace="a")] == ["t0", "t2"]
            assert await client.tokens.list(namespace="c") == []
            for secret, _ in made:
                assert secret.split("_", 2)[2] not in str(listed)
                assert "secret" not in str(listed[0].to_json())

    run(main())


@pytest.mark.parametrize("kwargs, message", [
    ({"name": ""}, "token name"),
    ({"name": "   "}, "token name"),
    ({"name": "x" * 201}, "token name"),
    ({"name": "ok", "scope": "root"}, "scope"),
    ({"name": "ok", "scope": "READ"}, "scope"),
    ({"name": "ok", "namespace": ""}, "namespace"),
    ({"name": "ok", "namespace": "a/b"}, "namespace"),
    ({"name": "ok", "namespace": "-lead"}, "namespace"),
    ({"name": "ok", "namespace": "n" * 65}, "namespace"),
    ({"name": "ok", "expires_in": 0}, "expires_in"),
    ({"name": "ok", "expires_in": -1}, "expires_in"),
    ({"name": "ok", "expires_in": float("nan")}, "expires_in"),
])
def test_bad_token_options_are_refused_and_store_nothing(
        any_db_url: str, kwargs: dict[str, object], message: str) -> None:
    async def main() -> None:
        async with duro.Client(any_db_url) as client:
            options = dict(kwargs)
            name = options.pop("name")
            with pytest.raises(InvalidArgumentError, match=message):
                await client.tokens.create(name, **options)  # type: ignore[arg-type]
            assert await client.tokens.list() == []

    run(main())


def test_only_a_hash_of_the_secret_is_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"

    async def main() -> str:
        async with duro.Client(url) as client:
            secret, _ = await client.tokens.create("hook")
            return secret

    secret = run(main())
    raw = (tmp_path / "t.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("t.db-*"))
    assert secret.split("_", 2)[2].encode() not in raw
    with sqlite3.connect(tmp_path / "t.db") as conn:
        (stored,) = conn.execute("SELECT secret_hash FROM api_tokens").fetchone()
    assert len(stored) == 64 and secret.split("_", 2)[2] not in stored
