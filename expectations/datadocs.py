"""Data Docs' static files (fonts, images, styles, scripts: 4 MB, the same for every run) kept
once per home instead of in every run's folder (issue 28: 1.7 GB a year of identical files).

GX copies its ``static/`` folder into each site it builds; after the build the copy is moved to
(or, when already there, dropped for) one shared folder, and each page's relative links to
``static/`` are pointed at it, so the pages still open from disk and a run folder can be
copied beside the shared folder as before. The folder is named after the GX version: a new GX
gets its own files, and the pages of older runs keep theirs.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

__all__ = ["share_static", "static_folder", "static_references"]

# a relative link to the site's own static folder: "./static/..." or "../../static/..."
_LINK = re.compile(r"""(?P<q>["'(])(?P<up>\./|(?:\.\./)+)static/""")


def static_folder(shared_root: Path) -> Path:
    """The shared folder of this GX version's static files under ``shared_root``."""
    from importlib.metadata import version

    return shared_root / f"great_expectations-{version('great_expectations')}"


def share_static(site: Path, shared_root: Path) -> Path:
    """Move ``site``'s ``static/`` to the shared folder (or drop it when the shared one is
    there already) and repoint every page of the site at it; returns the shared folder."""
    own = site / "static"
    shared = static_folder(shared_root)
    if not own.is_dir():
        return shared
    if not shared.is_dir():
        shared.parent.mkdir(parents=True, exist_ok=True)
        staging = shared.parent / f".{shared.name}.{uuid.uuid4().hex}"
        shutil.copytree(own, staging)
        try:
            os.rename(staging, shared)  # atomic: another run may be doing the same
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not shared.is_dir():
                raise
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        relative = Path(os.path.relpath(shared, page.parent)).as_posix()

        def repoint(match: re.Match[str], page: Path = page, relative: str = relative) -> str:
            # links into this site's static folder; GX's favicon link on the validation
            # pages counts one level short (it pointed at no file), so any folder of the site
            target = (page.parent / match["up"]).resolve()
            if not target.is_relative_to(site.resolve()):
                return match[0]
            return f"{match['q']}{relative}/"

        new = _LINK.sub(repoint, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    shutil.rmtree(own)
    return shared


def static_references(page: Path) -> list[Path]:
    """The local static files ``page`` links to (src/href), resolved: what must exist for the
    page to render."""
    text = page.read_text(encoding="utf-8")
    found = re.findall(r"""(?:src|href)=["']([^"'#?]+)["']""", text)
    return [(page.parent / link).resolve() for link in found
            if "static/" in link and not link.startswith(("http:", "https:", "//", "data:"))
            and not link.startswith("/")]
