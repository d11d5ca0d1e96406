"""``examples/tenant_headers.py`` runs offline and carries each tenant end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "tenant_headers.py"


def test_the_tenant_example_carries_each_tenant_to_every_step(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "t.db")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "'document': 'acme-2026-11.pdf (245 EUR)'" in out
    assert "to the billing contact of acme'" in out
    assert "'document': 'globex-2026-11.pdf (9 EUR)'" in out
    assert "run headers: {'tenant': 'globex'}" in out
    assert "steps run by the app's worker, per tenant: {'acme': 1, 'globex': 1}" in out
    assert "steps run by the reports worker, per tenant: {'acme': 1, 'globex': 1}" in out
