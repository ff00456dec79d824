"""Run the code blocks of a README the way a newcomer would, and fail naming the block that breaks.

Every fenced block whose info string is ``bash``/``sh``/``shell`` (run with ``bash -e -o pipefail``)
or ``python``/``py`` (run with this Python) is executed, in the order of the file, in one fresh
temporary directory (so later blocks see the files earlier ones wrote, and nothing lands in the
repository). Other blocks (``text``, ``console``, no language, ...) are documentation, not run.

A block that must not run here (a long training run, ``pip install``, TensorRT on a Jetson) is
marked by an HTML comment on the line(s) just before its fence::

    <!-- readme-check: skip -->
    ```bash
    pip install -e ".[dev]"
    ```

(text after ``skip`` inside the comment, e.g. ``<!-- readme-check: skip (needs a GPU) -->``, is
allowed and shown.) Usage::

    python scripts/check_readme.py                 # README.md of the repository
    python scripts/check_readme.py path/to/README.md --list
    python scripts/check_readme.py README.md --keep-going --timeout 900

Exit status: 0 when every runnable block succeeded, 1 when one failed (the message names it:
index, language, line), 2 for a usage problem (no such file).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python",
             "python3": "python"}
SKIP_RE = re.compile(r"<!--\s*readme-check:\s*skip\b(?P<reason>.*?)-->", re.IGNORECASE | re.DOTALL)
FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass
class Block:
    index: int              # 1-based, counting runnable (bash/python) blocks only
    language: str           # "bash" or "python"
    line: int               # 1-based line of the opening fence
    code: str
    skip: bool = False
    skip_reason: str = ""

    @property
    def label(self) -> str:
        return f"block {self.index} (```{self.language} at line {self.line})"


def parse_blocks(text: str) -> list[Block]:
    """The runnable fenced blocks of a Markdown text, with their skip marks."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group("indent"), m.group("fence"), m.group("info").strip()
        start = i
        body = []
        i += 1
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while i < len(lines) and not close.match(lines[i]):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1                                            # past the closing fence
        language = LANGUAGES.get(info.split()[0].lower().strip("{}.") if info else "")
        if language is None:
            continue
        skip, reason = _skip_mark(lines, start)
        blocks.append(Block(len(blocks) + 1, language, start + 1, "\n".join(body) + "\n",
                            skip, reason))
    return blocks


def _skip_mark(lines: list[str], fence_line: int) -> tuple[bool, str]:
    """Whether the non-blank text just before ``fence_line`` ends with a skip comment."""
    j = fence_line - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith("-->"):
        return False, ""
    # gather the (possibly multi-line) comment that ends on line j
    k = j
    while k >= 0 and "<!--" not in lines[k]:
        k -= 1
    comment = "\n".join(lines[max(k, 0): j + 1])
    m = SKIP_RE.search(comment)
    if not m:
        return False, ""
    return True, " ".join(m.group("reason").split()).strip(" :-()")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the console scripts of this Python (keras-seran) first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_block(block: Block, workdir: Path, timeout: float) -> tuple[bool, str, float]:
    """Run one block in ``workdir``: (ok, combined output, seconds)."""
    script = workdir / f".readme_block_{block.index}.{'sh' if block.language == 'bash' else 'py'}"
    script.write_text(block.code)
    if block.language == "bash":
        bash = shutil.which("bash") or "/bin/bash"
        cmd = [bash, "-e", "-o", "pipefail", str(script)]
    else:
        cmd = [sys.executable, str(script)]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        ok, output = proc.returncode == 0, proc.stdout
        if not ok:
            output += f"\n(exit status {proc.returncode})"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        ok, output = False, (out if isinstance(out, str) else out.decode(errors="replace")) + \
            f"\n(timed out after {timeout:.0f} s)"
    finally:
        script.unlink(missing_ok=True)
    return ok, output, time.perf_counter() - t


def _tail(text: str, n: int = 40) -> str:
    lines = text.rstrip().splitlines()
    return "\n".join(("    " + x) for x in lines[-n:])


def check(readme: Path, timeout: float = 600.0, keep_going: bool = False,
          workdir: Path | None = None, out=sys.stdout) -> int:
    """Run the README's blocks; 0 when all runnable ones pass, 1 otherwise."""
    blocks = parse_blocks(readme.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if not b.skip]
    print(f"{readme}: {len(blocks)} bash/python block(s), {len(runnable)} to run, "
          f"{len(blocks) - len(runnable)} marked skip", file=out, flush=True)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="readme_check_")) if own else Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    failed: list[Block] = []
    try:
        for b in blocks:
            if b.skip:
                why = f": {b.skip_reason}" if b.skip_reason else ""
                print(f"  skip {b.label}{why}", file=out, flush=True)
                continue
            ok, output, seconds = run_block(b, work, timeout)
            print(f"  {'ok  ' if ok else 'FAIL'} {b.label} ({seconds:.1f} s)", file=out, flush=True)
            if not ok:
                failed.append(b)
                print("    --- code ---", file=out)
                print(_tail(b.code, 30), file=out)
                print("    --- output (last lines) ---", file=out)
                print(_tail(output), file=out, flush=True)
                if not keep_going:
                    break
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        names = ", ".join(b.label for b in failed)
        print(f"README check FAILED: {names} of {readme}", file=out, flush=True)
        return 1
    where = "a fresh temporary directory" if own else str(work)
    print(f"README check passed: {len(runnable)} block(s) ran in {where}",
          file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("readme", nargs="?", type=Path, default=REPO / "README.md",
                   help="Markdown file to check (default: the repository's README.md)")
    p.add_argument("--list", action="store_true", help="list the blocks and their status; run nothing")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per block (default 600)")
    p.add_argument("--keep-going", action="store_true",
                   help="run the remaining blocks after a failure (default: stop at the first)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="run in this folder instead of a fresh temporary one (kept afterwards)")
    args = p.parse_args(argv)
    if not args.readme.is_file():
        print(f"check_readme: {args.readme}: no such file", file=sys.stderr)
        return 2
    if args.list:
        for b in parse_blocks(args.readme.read_text(encoding="utf-8")):
            status = f"skip{': ' + b.skip_reason if b.skip_reason else ''}" if b.skip else "run"
            first = next((x for x in b.code.splitlines() if x.strip()), "")
            print(f"{b.label}: {status}  | {first[:70]}")
        return 0
    return check(args.readme, args.timeout, args.keep_going, args.workdir)


if __name__ == "__main__":
    sys.exit(main())
