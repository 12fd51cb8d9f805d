"""Fixtures: the packaged knowledge files plus a small fixture rules file, in a temp dir."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from knowledge import KnowledgeBase, load_knowledge_base

FIXTURES = Path(__file__).parent / "fixtures"
PACKAGED = Path(str(resources.files("knowledge") / "data"))


def copy_knowledge(target: Path) -> Path:
    """Copy the packaged data files into `target`, with the fixture rules.yaml.

    The packaged rules.yaml is written by another part of the project; these tests check
    the loader and the data files, so they use a rules file of their own.
    """
    target.mkdir(parents=True, exist_ok=True)
    for file in PACKAGED.glob("*.yaml"):
        if file.name != "rules.yaml":
            shutil.copy(file, target / file.name)
    shutil.copy(FIXTURES / "rules.yaml", target / "rules.yaml")
    return target


@pytest.fixture(scope="session")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The packaged knowledge base (with the fixture rules), loaded once."""
    return load_knowledge_base(copy_knowledge(tmp_path_factory.mktemp("kb")))


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    """A fresh, writable copy of the knowledge files for breaking one field."""
    return copy_knowledge(tmp_path / "kb")
