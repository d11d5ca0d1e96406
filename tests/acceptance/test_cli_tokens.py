"""``duro token create|ls|revoke`` (issue 16): the secret printed once, listings without
secrets, revocation, and refusals that store nothing — on both stores."""

from __future__ import annotations

import json
import subprocess
import sys

import duro
from tests.conftest import run


def _duro(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "duro", "--db", url, *args],
                          capture_output=True, text=True, timeout=60)


def test_tokens_from_the_command_line(any_db_url: str) -> None:
    assert _duro(any_db_url, "db", "migrate").returncode == 0
    made = _duro(any_db_url, "token", "create", "billing hook", "--scope", "write",
                 "--namespace", "acme")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("duro_") and "not shown again" in made.stderr
    as_json = _duro(any_db_url, "token", "create", "ops", "--scope", "admin",
                    "--expires-in", "30d", "--json")
    ops = json.loads(as_json.stdout)
    assert ops["scope"] == "admin" and ops["expires_at"] and ops["token"].startswith("duro_")

    async def verify() -> str:
        async with duro.Client(any_db_url) as client:
            return (await client.tokens.verify(secret, scope="write")).namespace

    assert run(verify()) == "acme"
    listed = json.loads(_duro(any_db_url, "token", "ls", "--json").stdout)
    assert [t["name"] for t in listed] == ["billing hook", "ops"]
    assert secret.split("_", 2)[2] not in json.dumps(listed)
    table = _duro(any_db_url, "token", "ls", "--namespace", "acme")
    assert "billing hook" in table.stdout and "ops" not in table.stdout
    token_id = listed[0]["token_id"]
    revoked = _duro(any_db_url, "token", "revoke", token_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "revoked" in _duro(any_db_url, "token", "ls").stdout
    again = _duro(any_db_url, "token", "revoke", token_id)
    assert again.returncode == 2 and "no live token" in again.stderr
    # Refused, and nothing stored.
    for bad in (["create", "x", "--scope", "root"], ["create", ""],
                ["create", "x", "--namespace", "a b"], ["create", "x", "--expires-in", "0"]):
        refused = _duro(any_db_url, "token", *bad)
        assert refused.returncode == 2, (bad, refused.stderr)
    assert len(json.loads(_duro(any_db_url, "token", "ls", "--json").stdout)) == 2
