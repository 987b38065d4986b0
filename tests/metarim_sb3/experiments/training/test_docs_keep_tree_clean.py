"""Following the docs verbatim in a clone keeps it clean: runs record the bare commit and ``compare`` may write
under ``results/``. Only code that runs makes a tree dirty (:mod:`metarim_sb3.experiments.training.provenance`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from repo_paths import ROOT

from metarim_sb3.experiments.training.provenance import check_results_tree, code_changes, git_sha
from metarim_sb3.experiments.training.yaml_io import ConfigError


def _git(repo: Path, *args: str) -> None:
    cmd = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-c", "commit.gpgsign=false", *args]
    subprocess.run(cmd, cwd=repo, check=True, capture_output=True, timeout=120)


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    """A fresh clone of this repository's ``HEAD``, as a new user makes one."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of the repository")
    repo = tmp_path / "metarim"
    _git(tmp_path, "clone", "-q", "--depth", "1", ROOT.as_uri(), str(repo))
    return repo


def _block(text: str, language: str, after: str) -> str:
    """:return: the first fenced ``language`` block after the sentence ``after`` in a Markdown text."""
    found = re.search(re.escape(after) + r".*?```" + language + r"\n(.*?)```", text, flags=re.DOTALL)
    assert found, f"no {language} block after {after!r}"
    return found.group(1)


def _assert_clean(repo: Path) -> None:
    sha = git_sha(repo)
    assert sha is not None and re.fullmatch(r"[0-9a-f]{40}", sha), sha
    assert code_changes(repo) == []
    check_results_tree(repo / "results" / "smoke", allow_dirty=False)  # compare --out results/smoke may run


def test_following_the_docs_keeps_the_clone_clean(clone: Path) -> None:
    """The README's quickstart.py, the cluster guide's smoke.yaml and what the README's commands write."""
    readme = (clone / "README.md").read_text()
    (clone / "quickstart.py").write_text(_block(readme, "python", "## Quickstart"))
    cluster = (clone / "docs" / "guides" / "cluster.md").read_text()
    (clone / "smoke.yaml").write_text(_block(cluster, "yaml", "save as `smoke.yaml`"))
    assert "agents:" in (clone / "smoke.yaml").read_text()
    (clone / "runs" / "mr-goto").mkdir(parents=True)  # metarim train ... --out runs/mr-goto
    (clone / "runs" / "mr-goto" / "config.yaml").write_text("agent: meta-rim\n")
    (clone / "goto-heldout.gif").write_bytes(b"GIF89a")  # metarim render ... --out goto-heldout.gif
    _assert_clean(clone)


def test_code_changes_still_make_the_clone_dirty(clone: Path) -> None:
    """A new module inside a package, or an edit to a tracked file, is code that runs: dirty, and compare refuses."""
    _assert_clean(clone)
    (clone / "metarim_sb3" / "scratch.py").write_text("X = 1\n")
    assert code_changes(clone) == ["metarim_sb3/scratch.py"]
    assert str(git_sha(clone)).endswith("-dirty")
    with pytest.raises(ConfigError, match=r"metarim_sb3/scratch\.py.*--allow-dirty"):
        check_results_tree(clone / "results" / "smoke", allow_dirty=False)
    check_results_tree(clone / "results" / "smoke", allow_dirty=True)
    (clone / "metarim_sb3" / "scratch.py").unlink()
    with (clone / "metarim_gym" / "tasks.py").open("a") as file:
        file.write("# an edit\n")
    assert code_changes(clone) == ["metarim_gym/tasks.py"]
    assert str(git_sha(clone)).endswith("-dirty")
    _git(clone, "commit", "-q", "-am", "an edit")
    _assert_clean(clone)
    _git(clone, "mv", "metarim_gym/tasks.py", "metarim_gym/renamed.py")  # staged: a rename lists its new path
    assert code_changes(clone) == ["metarim_gym/renamed.py"]
