"""The web UI's routes: the page at ``/`` and its static assets under ``/ui/`` (issue 19).

The UI is a few hand-written files in ``server/ui/`` (an ES-module script, a style sheet,
the page), shipped in the package: no Node build, no CDN, nothing fetched from elsewhere.
Its routes are public (``scope=None``) because the files hold no data: the page asks the
API (``/v1/...``) for everything it shows, with the API token the user signs in with, so
it sees exactly what that token may see. Each file is one route of the table, read once
at import, so the OpenAPI document lists them with their media types and nothing else
under ``/ui/`` is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from duro.server._routes import Api, ApiRoute, Handler

__all__ = ["UI_ROUTES"]

_MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml"}

# The page runs only its own files and talks only to its own server: an injected string
# that slipped past the DOM-building code still could not load or send anything.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on each load: a new duro version's files are never mixed with old ones.
    "Cache-Control": "no-cache",
}


def _handler(name: str, body: bytes, media: str) -> Handler:
    async def handler(request: Request, api: Api) -> Response:
        return Response(body, media_type=media, headers=_HEADERS)

    # The OpenAPI operation id is the handler's name: one per file.
    handler.__name__ = handler.__qualname__ = "ui_" + name.replace(".", "_").replace("-", "_")
    return handler


def _routes() -> Iterator[ApiRoute]:
    folder = resources.files("duro.server") / "ui"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in _MEDIA:
            continue
        media, body = _MEDIA[suffix], entry.read_bytes()
        path = "/" if entry.name == "index.html" else f"/ui/{entry.name}"
        summary = ("the web UI (sign in with an API token; docs/ui.md)"
                   if path == "/" else f"the web UI's {entry.name}")
        yield ApiRoute(method="GET", path=path, handler=_handler(entry.name, body, media),
                       scope=None, tag="ui", summary=summary, responses={200: "text"},
                       media=media)


UI_ROUTES: tuple[ApiRoute, ...] = tuple(_routes())
"""The page and each of its assets, in the order of their file names."""
