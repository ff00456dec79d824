"""The README checker (scripts/check_readme.py), and the real README's and docs pages' links and
code blocks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_readme.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_readme", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


checker = _load_checker()

SYNTHETIC = textwrap.dedent("""\
    # A project

    Install (not run by the checker):

    <!-- readme-check: skip (installs packages) -->
    ```bash
    pip install something-that-does-not-exist
    exit 7
    ```

    A passing shell block that leaves a file for the next blocks:

    ```bash
    echo "hello" > greeting.txt
    test -f greeting.txt
    ```

    Not code to run:

    ```text
    exit 1
    ```

    - a passing python block, indented inside a list item:

      ```python
      from pathlib import Path
      assert Path("greeting.txt").read_text().strip() == "hello"
      print("python ok")
      ```

    A failing block:

    ```sh
    echo "about to fail"
    false
    echo "never printed"
    ```

    ```python
    raise SystemExit("a block after the failure")
    ```
    """)


def _run(readme: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(readme), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


def test_parse_blocks_languages_lines_and_skip_marks():
    blocks = checker.parse_blocks(SYNTHETIC)
    assert [b.language for b in blocks] == ["bash", "bash", "python", "bash", "python"]
    assert [b.skip for b in blocks] == [True, False, False, False, False]
    assert blocks[0].skip_reason == "installs packages"
    lines = SYNTHETIC.splitlines()
    for b in blocks:
        assert lines[b.line - 1].lstrip().startswith("```"), b
    # the indented block is dedented to run as Python
    assert blocks[2].code.startswith("from pathlib import Path\n")
    assert "exit 1" not in "".join(b.code for b in blocks)  # the ```text block is not a block


def test_skip_mark_only_applies_to_the_next_block():
    text = "<!-- readme-check: skip -->\n\n```bash\ntrue\n```\n\nprose\n\n```bash\ntrue\n```\n"
    blocks = checker.parse_blocks(text)
    assert [b.skip for b in blocks] == [True, False]
    other = "<!-- just a comment -->\n```python\npass\n```\n"
    assert [b.skip for b in checker.parse_blocks(other)] == [False]


def test_checker_fails_naming_the_failing_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(SYNTHETIC)
    fail_line = next(b.line for b in checker.parse_blocks(SYNTHETIC) if "false" in b.code)
    proc = _run(readme, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert f"block 4 (```bash at line {fail_line})" in out.splitlines()[-1], out
    assert "skip block 1" in out and "installs packages" in out
    assert "ok   block 2" in out and "ok   block 3" in out
    shown = out.split("--- output (last lines) ---")[1]
    assert "about to fail" in shown and "never printed" not in shown  # bash -e stopped it
    assert "block 5" not in out  # stops at the first failure by default
    # the blocks ran in a fresh temporary folder, not in the caller's directory
    assert not (tmp_path / "greeting.txt").exists()


def test_checker_keep_going_reports_every_failure(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(SYNTHETIC)
    proc = _run(readme, "--keep-going", cwd=tmp_path)
    assert proc.returncode == 1
    last = proc.stdout.splitlines()[-1]
    assert "block 4" in last and "block 5" in last, proc.stdout


def test_checker_passes_when_every_runnable_block_passes(tmp_path):
    passing = SYNTHETIC.split("A failing block:")[0]
    readme = tmp_path / "README.md"
    readme.write_text(passing)
    proc = _run(readme, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "2 block(s) ran" in proc.stdout


def test_checker_list_and_missing_file(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(SYNTHETIC)
    proc = _run(readme, "--list", cwd=tmp_path)
    assert proc.returncode == 0
    assert len(proc.stdout.strip().splitlines()) == 5
    assert _run(tmp_path / "nope.md", cwd=tmp_path).returncode == 2


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


LINKED = {
    "README.md": """\
        # Project

        See [the guide](docs/guide.md), its [install part](docs/guide.md#install-it-in-a-venv),
        [notes](docs/notes.md#notes) and ![a picture](docs/images/a.png).
        [Up](#project)
        """,
    "docs/guide.md": """\
        # Guide

        ## Install it in a venv

        ## `predict` options: x2 / x3

        ## Example
        ## Example

        Back to the [README](../README.md#project); [the options](#predict-options-x2--x3),
        [the second example](#example-1), <a id="custom"></a>[custom](#custom).
        Not links: `[x](missing.md)` and

        ```markdown
        [y](also-missing.md)
        ```
        """,
    "docs/notes.md": "Notes\n=====\n\n[web](https://example.org/nowhere.md) [mail](mailto:a@b.c)\n",
    "docs/images/a.png": "png",
}


def test_link_check_accepts_files_headings_ids_and_ignores_code_and_web(tmp_path):
    _write(tmp_path, LINKED)
    problems = checker.link_problems(
        [tmp_path / "README.md", *sorted((tmp_path / "docs").glob("*.md"))]
    )
    assert problems == []
    found = checker.anchors((tmp_path / "docs/guide.md").read_text())
    assert {
        "guide",
        "install-it-in-a-venv",
        "predict-options-x2--x3",
        "example",
        "example-1",
        "custom",
    } <= found


def test_link_check_names_a_missing_page_a_missing_anchor_and_an_unlinked_page(tmp_path):
    files = dict(LINKED)
    files["README.md"] = (
        LINKED["README.md"]
        .replace("docs/guide.md#install-it-in-a-venv", "docs/guide.md#install")
        .replace("[notes](docs/notes.md#notes)", "[notes](docs/gone.md)")
    )
    _write(tmp_path, files)
    proc = _run(tmp_path / "README.md", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout
    broken = [line for line in proc.stdout.splitlines() if line.startswith("BROKEN")]
    assert len(broken) == 3, proc.stdout
    assert "README.md:3: link 'docs/guide.md#install'" in broken[0]
    assert "no heading '#install' in guide.md" in broken[0]
    assert "install-it-in-a-venv" in broken[0]  # the hint names it
    assert "link 'docs/gone.md'" in broken[1] and "no such file" in broken[1]
    assert "does not link to the docs page docs/notes.md" in broken[2]
    assert "3 broken link(s)" in proc.stdout.splitlines()[-1]
    assert "block(s) ran" not in proc.stdout  # no code ran after it


def test_links_only_runs_no_code(tmp_path):
    _write(tmp_path, {"README.md": "# A\n\n```bash\ntouch ran.txt\n```\n[self](#a)\n"})
    proc = _run(tmp_path / "README.md", "--links-only", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "links only" in proc.stdout.splitlines()[-1]
    proc = _run(tmp_path / "README.md", "--workdir", "work", cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "work" / "ran.txt").exists(), proc.stdout


def test_several_files_run_each_in_its_own_folder(tmp_path):
    _write(
        tmp_path,
        {"a.md": "```bash\necho a > a.txt\n```\n", "b.md": "```bash\ntest ! -e a.txt\n```\n"},
    )
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "a.md", "b.md"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    assert "2 file(s), links ok, 2 block(s) ran" in proc.stdout


# --------------------------------------------------------------------------------------------
# the repository's own README and docs pages

DOC_FILES = checker.default_files(REPO)
README_MAX_LINES = 160  # issue 18: "about 150 lines" a newcomer reads in minutes


def test_repository_links_resolve_and_every_docs_page_is_linked_from_the_readme():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--links-only"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_readme_stays_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines: move details to a docs/ page and link it"
    )


def test_readme_results_block_is_what_update_results_writes(tmp_path):
    """scripts/update_results.py still finds its markers in README.md, and the numbers there are
    the ones it writes from docs/results.csv and the weight cards (rerun it after an evaluation).
    It runs on a copy of the repository (it also rewrites the model card), importing the copy."""
    for rel in ["README.md", "scripts/update_results.py", "docs/results.csv"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, tmp_path / rel)
    shutil.copytree(
        REPO / "keras_seran", tmp_path / "keras_seran", ignore=shutil.ignore_patterns("__pycache__")
    )
    card = REPO / "keras_seran" / "weights" / "MODEL_CARD.md"
    before = card.stat().st_mtime_ns
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "scripts" / "update_results.py"),
            str(tmp_path / "docs" / "results.csv"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert card.stat().st_mtime_ns == before, "update_results.py wrote into the repository"
    assert (tmp_path / "README.md").read_text() == (REPO / "README.md").read_text(), (
        "README.md's results block differs from what scripts/update_results.py writes"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "page",
    [
        p
        for p in DOC_FILES
        if any(not b.skip for b in checker.parse_blocks(p.read_text(encoding="utf-8")))
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_page_blocks_run(page, tmp_path):
    """Every ```bash / ```python block of README.md and docs/*.md not marked skip runs, in a fresh
    folder per page."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(page), "--timeout", "900"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=3600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
