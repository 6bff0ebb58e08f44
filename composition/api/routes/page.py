"""The built-in web page: a shell (index.html) and its ES modules, served from ``static/``.

No build step and nothing from the internet: the browser loads ``/static/app.js``, which
imports the views under ``/static/views/``. Files are served by name from a fixed set
found at import (no path from the request ever reaches the file system), with an ETag so
a reload costs a 304 per file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse

from sealscope.errors import NotFound

router = APIRouter(include_in_schema=False)

_STATIC: Final = Path(__file__).resolve().parent.parent / "static"
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",  # module scripts need a JavaScript type
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# name -> file, built once: a request names an entry, never a path
_FILES: Final = {
    p.relative_to(_STATIC).as_posix(): p
    for p in sorted(_STATIC.rglob("*"))
    if p.is_file() and p.suffix in _TYPES
}


@router.get("/")
def index() -> FileResponse:
    return FileResponse(_STATIC / "index.html", media_type=_TYPES[".html"])


@router.get("/static/{name:path}")
def static_file(name: str) -> FileResponse:
    path = _FILES.get(name)
    if path is None:
        raise NotFound("file", name)
    # no-cache: revalidate by ETag every load, so a new release is never half-cached
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
