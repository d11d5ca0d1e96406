"""The web UI's files (issue 19): each file of ``server/ui/`` is one public route with
its media type, the page loads only files that are served, the scripts import only
each other (no CDN, nothing from elsewhere), and every response carries the CSP."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from duro.client import Client
from duro.server import create_app
from duro.server._ui import UI_ROUTES

UI = Path(__file__).resolve().parents[2] / "src" / "duro" / "server" / "ui"


def test_each_file_is_served_with_its_media_type_and_the_csp(tmp_path: Path) -> None:
    files = sorted(p.name for p in UI.iterdir())
    served = {r.path: r for r in UI_ROUTES}
    assert set(served) == {"/" if f == "index.html" else f"/ui/{f}" for f in files}
    app = create_app(Client(f"sqlite:///{tmp_path}/x.db"), own_client=True, auth=True)
    with TestClient(app) as http:
        for path, route in served.items():
            response = http.get(path)  # no token: the files hold no data
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(route.media)
            assert "default-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
        assert http.get("/ui/nothing.js").status_code == 404
        assert http.get("/v1/runs").status_code == 401  # the data still needs a token


def test_the_page_and_scripts_load_only_served_files() -> None:
    served = {r.path for r in UI_ROUTES}
    page = (UI / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', page):
        assert ref.startswith("data:") or "/" + ref in served, ref
    for script in UI.glob("*.js"):
        text = script.read_text()
        for target in re.findall(r'from "([^"]+)"', text):
            assert target.startswith("./") and f"/ui/{target[2:]}" in served, target
        assert "innerHTML" not in text and "eval(" not in text  # text only, never markup
        assert not re.search(r"https?://", text), script.name  # nothing from elsewhere
