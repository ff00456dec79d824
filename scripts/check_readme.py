"""Check the README and the docs pages the way a newcomer uses them: links resolve, code runs.

Two checks, on README.md, every docs/*.md page and export/README.md by default (or on the
Markdown files given):

1. **Links** (fast; nothing runs). Every relative link or image outside code, ``[text](path)``,
   ``[text](path#anchor)``, ``[text](#anchor)``, a reference definition ``[name]: path`` or an
   HTML ``href``/``src``, must name an existing file or folder, and an ``#anchor`` into a Markdown
   file must match one of its headings (GitHub's anchors: lower case, punctuation dropped, spaces
   to ``-``, ``-1``, ``-2`` ... for repeated headings) or an explicit ``<a id="...">``. Web links
   (``https:``, ``mailto:`` ...) are not fetched. A checked file named ``README.md`` with a
   ``docs/`` folder beside it must link to every ``docs/*.md`` page, so every page stays
   reachable from the README.
2. **Code blocks.** Every fenced block whose info string is ``bash``/``sh``/``shell`` (run with
   ``bash -e -o pipefail``) or ``python``/``py`` (run with this Python) is executed, in the order
   of its file, in one fresh temporary directory per file (so later blocks see the files earlier
   ones wrote, and nothing lands in the repository). Other blocks (``text``, ``console``, no
   language, ...) are documentation, not run.

A block that must not run here (a long training run, ``pip install``, a GPU, TensorRT on a Jetson,
the whole test suite) is marked by an HTML comment on the line(s) just before its fence::

    <!-- readme-check: skip -->
    ```bash
    pip install -e ".[dev]"
    ```

(text after ``skip`` inside the comment, e.g. ``<!-- readme-check: skip (needs a GPU) -->``, is
allowed and shown.) Usage::

    python scripts/check_readme.py                      # README.md and docs/*.md: links, then code
    python scripts/check_readme.py --links-only         # links only (seconds; what the fast test runs)
    python scripts/check_readme.py --list               # every block of every file and its status
    python scripts/check_readme.py docs/cli.md --keep-going --timeout 900

Exit status: 0 when every link resolves and every runnable block succeeded, 1 when a link is
broken or a block failed (the message names them: file, index, language, line), 2 for a usage
problem (no such file).
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
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]

LANGUAGES = {
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
    "python": "python",
    "py": "python",
    "python3": "python",
}
SKIP_RE = re.compile(r"<!--\s*readme-check:\s*skip\b(?P<reason>.*?)-->", re.IGNORECASE | re.DOTALL)
FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def default_files(repo: Path = REPO) -> list[Path]:
    """The repository's README.md, its docs/*.md pages in name order, and export/README.md (a
    pointer to the docs) when present."""
    pointer = repo / "export" / "README.md"
    return [
        repo / "README.md",
        *sorted((repo / "docs").glob("*.md")),
        *([pointer] if pointer.is_file() else []),
    ]


# --------------------------------------------------------------------------------------------
# code blocks


@dataclass
class Block:
    index: int  # 1-based, counting runnable (bash/python) blocks only
    language: str  # "bash" or "python"
    line: int  # 1-based line of the opening fence
    code: str
    skip: bool = False
    skip_reason: str = ""

    @property
    def label(self) -> str:
        return f"block {self.index} (```{self.language} at line {self.line})"


def _fenced_spans(lines: list[str]):
    """(start, end, indent, info) of every fenced block: ``lines[start]`` is the opening fence,
    ``lines[end]`` the closing one (or ``len(lines)`` when the file ends first)."""
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        yield i, j, m.group("indent"), m.group("info").strip()
        i = j + 1


def parse_blocks(text: str) -> list[Block]:
    """The runnable fenced blocks of a Markdown text, with their skip marks."""
    lines = text.splitlines()
    blocks: list[Block] = []
    for start, end, indent, info in _fenced_spans(lines):
        language = LANGUAGES.get(info.split()[0].lower().strip("{}.") if info else "")
        if language is None:
            continue
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[start + 1 : end]
        ]
        skip, reason = _skip_mark(lines, start)
        blocks.append(
            Block(len(blocks) + 1, language, start + 1, "\n".join(body) + "\n", skip, reason)
        )
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
    comment = "\n".join(lines[max(k, 0) : j + 1])
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
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        ok, output = proc.returncode == 0, proc.stdout
        if not ok:
            output += f"\n(exit status {proc.returncode})"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        ok, output = (
            False,
            (out if isinstance(out, str) else out.decode(errors="replace"))
            + f"\n(timed out after {timeout:.0f} s)",
        )
    finally:
        script.unlink(missing_ok=True)
    return ok, output, time.perf_counter() - t


def _tail(text: str, n: int = 40) -> str:
    lines = text.rstrip().splitlines()
    return "\n".join(("    " + x) for x in lines[-n:])


def run_blocks(
    path: Path,
    timeout: float = 600.0,
    keep_going: bool = False,
    workdir: Path | None = None,
    out=sys.stdout,
) -> tuple[list[Block], int]:
    """Run the runnable blocks of one Markdown file: (failed blocks, number that ran)."""
    blocks = parse_blocks(path.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if not b.skip]
    print(
        f"{shown(path)}: {len(blocks)} bash/python block(s), {len(runnable)} to run, "
        f"{len(blocks) - len(runnable)} marked skip",
        file=out,
        flush=True,
    )
    if not runnable:
        return [], 0
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="readme_check_")) if own else Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    failed: list[Block] = []
    ran = 0
    try:
        for b in blocks:
            if b.skip:
                why = f": {b.skip_reason}" if b.skip_reason else ""
                print(f"  skip {b.label}{why}", file=out, flush=True)
                continue
            ok, output, seconds = run_block(b, work, timeout)
            ran += 1
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
        else:
            print(f"  (ran in {work})", file=out, flush=True)
    return failed, ran


# --------------------------------------------------------------------------------------------
# links and anchors

_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?(?P<target>[^)\s>]*)>?"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>[^\s>]+)>?")
_HTML_ATTR = re.compile(r"<[a-zA-Z][^>]*?\b(?:href|src)\s*=\s*[\"'](?P<target>[^\"']*)[\"']")
_HTML_ID = re.compile(r"<[a-zA-Z][^>]*?\b(?:id|name)\s*=\s*[\"'](?P<id>[^\"']+)[\"']")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_ATX = re.compile(r"^\s{0,3}#{1,6}\s+(?P<text>.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class BrokenLink:
    path: Path
    line: int
    target: str
    problem: str

    def __str__(self) -> str:
        return f"{shown(self.path)}:{self.line}: link '{self.target}': {self.problem}"


def _prose_lines(text: str, blank_code_spans: bool = True) -> list[tuple[int, str]]:
    """(1-based line number, line) of the text outside fenced code (code spans blanked: a link
    written inside backticks is an example, not a link)."""
    lines = text.splitlines()
    in_code = [False] * len(lines)
    for start, end, _, _ in _fenced_spans(lines):
        for k in range(start, min(end + 1, len(lines))):
            in_code[k] = True
    blank = (
        (lambda s: _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), s))
        if blank_code_spans
        else (lambda s: s)
    )
    return [(i + 1, blank(line)) for i, line in enumerate(lines) if not in_code[i]]


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())  # punctuation, symbols, `*
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown text defines: its headings' (de-duplicated) and explicit ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    prose = _prose_lines(text, blank_code_spans=False)  # `code` in a heading counts
    previous = ""
    for _, line in prose:
        heading = None
        m = _ATX.match(line)
        if m:
            heading = m.group("text")
        elif _SETEXT.match(line) and previous.strip() and not previous.lstrip().startswith("|"):
            heading = previous.strip()
        if heading is not None:
            base = slugify(heading)
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found.update(m.group("id") for m in _HTML_ID.finditer(line))
        previous = line
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every link, image, reference definition and href/src outside code."""
    out = []
    for number, line in _prose_lines(text):
        for regex in (_INLINE_LINK, _REF_DEF, _HTML_ATTR):
            out.extend((number, m.group("target")) for m in regex.finditer(line))
    return out


def check_links(path: Path, _cache: dict[Path, set[str]] | None = None) -> list[BrokenLink]:
    """The broken relative links and anchors of one Markdown file."""
    cache = {} if _cache is None else _cache
    shown, path = path, path.resolve()
    text = path.read_text(encoding="utf-8")
    broken = []
    for line, target in links(text):
        if not target or _SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            broken.append(BrokenLink(shown, line, target, f"no such file {dest}"))
            continue
        if not anchor:
            continue
        if dest.is_dir() or dest.suffix.lower() != ".md":
            broken.append(
                BrokenLink(shown, line, target, "an anchor into a file that is not Markdown")
            )
            continue
        if dest not in cache:
            cache[dest] = anchors(dest.read_text(encoding="utf-8"))
        if unquote(anchor) not in cache[dest]:
            near = sorted(a for a in cache[dest] if anchor.split("-")[0] in a)[:5]
            hint = f" (headings there: {', '.join(near)})" if near else ""
            broken.append(
                BrokenLink(shown, line, target, f"no heading '#{anchor}' in {dest.name}{hint}")
            )
    return broken


def unlinked_pages(readme: Path) -> list[Path]:
    """The ``docs/*.md`` pages beside ``readme`` that it does not link to."""
    readme = readme.resolve()
    docs = readme.parent / "docs"
    if not docs.is_dir():
        return []
    linked = set()
    for _, target in links(readme.read_text(encoding="utf-8")):
        file_part = target.partition("#")[0]
        if file_part and not _SCHEME.match(target):
            linked.add((readme.parent / unquote(file_part)).resolve())
    return [p for p in sorted(docs.glob("*.md")) if p.resolve() not in linked]


def link_problems(files: list[Path]) -> list[str]:
    """Every broken link of ``files`` and every docs page a checked README.md leaves unlinked."""
    cache: dict[Path, set[str]] = {}
    problems = [str(b) for f in files for b in check_links(f, cache)]
    for f in files:
        if f.name == "README.md":
            problems += [
                f"{shown(f)}: does not link to the docs page {p.relative_to(f.resolve().parent)} "
                "(every docs page must be reachable from the README)"
                for p in unlinked_pages(f)
            ]
    return problems


# --------------------------------------------------------------------------------------------
# the command


def check(
    files: list[Path],
    timeout: float = 600.0,
    keep_going: bool = False,
    workdir: Path | None = None,
    links_only: bool = False,
    out=sys.stdout,
) -> int:
    """Check the links of ``files``, then run their blocks; 0 when all pass, 1 otherwise."""
    problems = link_problems(files)
    for p in problems:
        print(f"BROKEN {p}", file=out, flush=True)
    print(f"links: {len(problems)} problem(s) in {len(files)} file(s)", file=out, flush=True)
    failures: list[str] = []
    ran = 0
    if not links_only and (keep_going or not problems):
        for f in files:
            sub = (
                None
                if workdir is None
                else (Path(workdir) / f.stem if len(files) > 1 else Path(workdir))
            )
            failed, n = run_blocks(f, timeout, keep_going, sub, out)
            ran += n
            if failed:
                failures.append(f"{', '.join(b.label for b in failed)} of {shown(f)}")
                if not keep_going:
                    break
    if problems or failures:
        what = failures + ([f"{len(problems)} broken link(s)"] if problems else [])
        print(f"README check FAILED: {'; '.join(what)}", file=out, flush=True)
        return 1
    place = "a fresh temporary directory" if workdir is None else str(workdir)
    where = "links only" if links_only else f"{ran} block(s) ran, each file in {place}"
    print(f"README check passed: {len(files)} file(s), links ok, {where}", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="Markdown files to check (default: README.md, docs/*.md, export/README.md)",
    )
    p.add_argument(
        "--list", action="store_true", help="list the blocks and their status; run nothing"
    )
    p.add_argument(
        "--links-only", action="store_true", help="check the links and anchors only; run no code"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per block (default 600)")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="run the remaining blocks after a failure (default: stop at the first)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="run in this folder (one subfolder per file when there are several) "
        "instead of a fresh temporary one (kept afterwards)",
    )
    args = p.parse_args(argv)
    files = args.files or default_files()
    missing = [f for f in files if not f.is_file()]
    if missing:
        print(f"check_readme: {missing[0]}: no such file", file=sys.stderr)
        return 2
    if args.list:
        for f in files:
            for b in parse_blocks(f.read_text(encoding="utf-8")):
                status = f"skip{': ' + b.skip_reason if b.skip_reason else ''}" if b.skip else "run"
                first = next((x for x in b.code.splitlines() if x.strip()), "")
                print(f"{shown(f)} {b.label}: {status}  | {first[:70]}")
        return 0
    return check(files, args.timeout, args.keep_going, args.workdir, args.links_only)


if __name__ == "__main__":
    sys.exit(main())
