"""The README checker (scripts/check_readme.py) and the real README's code blocks."""

from __future__ import annotations

import importlib.util
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
    return subprocess.run([sys.executable, str(SCRIPT), str(readme), *args], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)


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
    assert "exit 1" not in "".join(b.code for b in blocks)      # the ```text block is not a block


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
    assert "about to fail" in shown and "never printed" not in shown   # bash -e stopped it
    assert "block 5" not in out                      # stops at the first failure by default
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


@pytest.mark.slow
def test_real_readme_blocks_run(tmp_path):
    """Every ```bash / ```python block of README.md not marked skip runs in a fresh folder."""
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md is absent")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(readme), "--timeout", "900"],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=3600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
