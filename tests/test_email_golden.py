"""Every email template renders, byte for byte, what the golden files hold (tests/golden/emails,
written by ``python -m tests.golden_emails``): a change of layout that is not meant to change
what readers see cannot slip through. An intended change rewrites them; the diff is the review."""

from __future__ import annotations

import pytest

from kamflow.notifications.render import TEMPLATE_DIR
from tests.golden_emails import GOLDEN, renderings

RENDERED = renderings()


def test_the_golden_files_are_the_cases() -> None:
    """No case without its golden file, no golden file left over from a case removed."""
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(RENDERED)


def test_every_email_template_has_a_case() -> None:
    """A new email (templates/<name>.<lang>.<ext>; "_" files are layouts and macros) cannot
    go without golden renderings."""
    emails = {p.name.split(".")[0].removesuffix("_subject") for p in TEMPLATE_DIR.iterdir()
              if not p.name.startswith("_")}
    cases = {name.split("-")[0] for name in RENDERED}
    assert emails == cases


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_an_email_renders_as_its_golden_file(name: str) -> None:
    assert RENDERED[name] == (GOLDEN / name).read_bytes().decode("utf-8"), (
        f"{name} differs from tests/golden/emails/{name}; if the change is intended, run "
        "`python -m tests.golden_emails` and review the diff")
