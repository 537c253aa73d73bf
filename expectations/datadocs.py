"""Data Docs' static files (fonts, images, styles, scripts: 4 MB, the same for every run) kept
once per home instead of in every run's folder (issue 28: 1.7 GB a year of identical files).

GX copies its ``static/`` folder into each site it builds; after the build the copy is moved to
(or, when already there, dropped for) one shared folder, and each page's relative links to
``static/`` are pointed at it, so the pages still open from disk and a run folder can be
copied beside the shared folder as before. The folder is named after the GX version: a new GX
gets its own files, and the pages of older runs keep theirs. A page the same as an earlier
run's (the expectation suites' pages) is a hard link to one copy under ``pages/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

__all__ = ["PAGES", "share_static", "static_folder", "static_references", "unused_pages"]

PAGES = "pages"  # under the shared folder: pages identical across runs, kept once (hard links)
# GX's cache-busting stamp on its remote logo (``logo-long.png?d=20261207T135049.385039Z``):
# the only difference between two runs' pages of the same expectation suite
_STAMP = re.compile(r"(?<=\.png)\?d=\d{8}T\d{6}\.\d+Z")

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

        new = _STAMP.sub("", _LINK.sub(repoint, text))
        if new != text:
            page.write_text(new, encoding="utf-8")
        if page.is_relative_to(site / "expectations"):  # the same for every run
            _link_same(page, site, shared_root / PAGES)
    shutil.rmtree(own)
    return shared


def _link_same(page: Path, site: Path, pages: Path) -> None:
    """A page the same as one an earlier run wrote at the same place in its site (the
    expectation suites' pages, unless a suite changed) becomes a hard link to one shared copy:
    each run's folder keeps the page, the disk keeps it once. Where the file system has no
    hard links the page simply stays a copy."""
    digest = hashlib.sha256(page.relative_to(site).as_posix().encode() + b"\0"
                            + page.read_bytes()).hexdigest()
    kept = pages / f"{digest}.html"
    try:
        pages.mkdir(parents=True, exist_ok=True)
        if not kept.exists():
            os.link(page, kept)
            return
        staging = page.with_name(f".{page.name}.{uuid.uuid4().hex}")
        os.link(kept, staging)
        os.replace(staging, page)
    except OSError:  # no hard links here (or a race with another run): keep the copy
        return


def unused_pages(shared_root: Path) -> list[Path]:
    """Shared pages no run folder links to any more (housekeeping removes them)."""
    folder = shared_root / PAGES
    return sorted(p for p in folder.glob("*.html") if p.stat().st_nlink < 2) \
        if folder.is_dir() else []


def static_references(page: Path) -> list[Path]:
    """The local static files ``page`` links to (src/href), resolved: what must exist for the
    page to render."""
    text = page.read_text(encoding="utf-8")
    found = re.findall(r"""(?:src|href)=["']([^"'#?]+)["']""", text)
    return [(page.parent / link).resolve() for link in found
            if "static/" in link and not link.startswith(("http:", "https:", "//", "data:"))
            and not link.startswith("/")]
