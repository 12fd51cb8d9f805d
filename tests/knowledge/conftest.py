"""Fixtures: the packaged data files with a small test rules.yaml, in a temp dir.

`kb_with_test_rules` is loaded once; `kb_with_test_rules_dir` is a fresh copy to break.
Tests of the packaged rules load the packaged directory itself (`packaged_kb`).
"""

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

    The loader tests check the data files and the loader, so they use a small rules file
    whose rule list they can count on; the packaged rules are tested with the cards.
    """
    target.mkdir(parents=True, exist_ok=True)
    for file in PACKAGED.glob("*.yaml"):
        if file.name != "rules.yaml":
            shutil.copy(file, target / file.name)
    shutil.copy(FIXTURES / "rules.yaml", target / "rules.yaml")
    return target


@pytest.fixture(scope="package")
def kb_with_test_rules(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The packaged data files with the test rules.yaml, loaded once."""
    return load_knowledge_base(copy_knowledge(tmp_path_factory.mktemp("kb-with-test-rules")))


@pytest.fixture
def kb_with_test_rules_dir(tmp_path: Path) -> Path:
    """A fresh, writable copy of the packaged data files with the test rules.yaml."""
    return copy_knowledge(tmp_path / "kb-with-test-rules")
