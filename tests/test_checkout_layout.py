"""The checkout reads as the installed package: kamflow/<stage> is a symlink to each stage folder
that pyproject's package-dir maps to kamflow.<stage>, so mypy and lint-imports check the working
tree (README, "Two commands") and a new stage folder cannot be left out of both."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_mapped_stage_folder_has_its_symlink_under_kamflow() -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {package: folder for package, folder in mapping["package-dir"].items()
               if package != "kamflow"}
    assert folders, "pyproject.toml maps no stage folder"
    for package, folder in folders.items():
        link = ROOT / package.replace(".", "/")
        assert link.is_symlink(), f"{link.relative_to(ROOT)} should be a symlink to ../{folder}"
        assert link.readlink() == Path("..") / folder
        assert (link / "__init__.py").is_file()
