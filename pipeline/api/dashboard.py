"""The developer dashboard: one static page at ``/`` and its assets under ``/dashboard/``.

Plain HTML, CSS and JavaScript shipped as package data (``pipeline/api/dashboard/``), no build
step and nothing fetched from elsewhere. The page talks to the ``/v1`` API with the API key the
developer signs in with (kept in the tab's ``sessionStorage``, never in a URL). Only the files in
that folder are served, looked up by exact name, so no path can reach anything else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from pipeline.api.errors import not_found

ASSETS = Path(__file__).resolve().parent / "dashboard"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
HEADERS = {
    # Scripts and styles from this origin only: no inline script runs, even if data slipped into
    # the DOM as markup; the page may not be framed (clickjacking) nor leak its URL.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> FileResponse:
    path = ASSETS / name
    media_type = _TYPES.get(path.suffix)
    if media_type is None or "/" in name or name.startswith(".") or not path.is_file():
        raise not_found("file", name)
    return FileResponse(path, media_type=f"{media_type}; charset=utf-8", headers=HEADERS)


@router.get("/")
async def dashboard_page() -> FileResponse:
    return _asset("index.html")


@router.get("/dashboard/{name}")
async def dashboard_asset(name: str) -> FileResponse:
    return _asset(name)
