"""File safety: atomic writes and output checks, for every file the package writes (no TensorFlow).

Every file is first written to a hidden temporary file in the destination folder and then moved
into place with ``os.replace`` (atomic on one file system): the output appears only once it is
complete, and a failure (or Ctrl-C, or SIGTERM under the command line) leaves nothing behind,
not even the folders made for it. The input is never overwritten, and an existing output only
with ``overwrite=True``. Writers: :func:`save_nifti`, :func:`save_figure`,
:func:`atomic_save_model`, :func:`atomic_write_json`, and :func:`atomic_path` for anything else.

Temporary files are named ``.keras-seran-tmp-<pid>@<host>.<random>-<final name>``
(:data:`TEMP_PREFIX`, :func:`is_temporary`): hidden, so no input discovery lists them, and
recognisable, so a process killed mid-write (``kill -9``, power loss) leaves a file the next
write into that folder removes (:func:`remove_leftovers`: its writer is gone, or it is older
than :data:`LEFTOVER_AGE_S`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keras_seran.errors import InputDataError, OutputPathError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_suffix(path: str | Path) -> str | None:
    """ ".nii.gz" or ".nii" when ``path`` ends with one (case-insensitive), else None."""
    low = str(path).lower()
    for suf in NIFTI_SUFFIXES:
        if low.endswith(suf):
            return str(path)[-len(suf) :]
    return None


def _full_suffix(path: Path) -> str:
    return nifti_suffix(path) or path.suffix


# --------------------------------------------------------------------------------------------
# temporary files and their leftovers

#: Start of every temporary file name this package makes (hidden: a leading dot).
TEMP_PREFIX = ".keras-seran-tmp-"
#: A temporary file untouched this long (seconds) is a leftover whatever wrote it.
LEFTOVER_AGE_S = 3600.0
#: ``.keras-seran-tmp-<pid>@<host>.<random>-<name>`` (the host name holds no dot)
_TEMP_RE = re.compile(r"^\.keras-seran-tmp-(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.")
#: The earlier naming, ``.<name>.<8 random>.tmp<suffix of name>`` (no writer recorded: age only).
_LEGACY_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[^/]*)$")


def _host() -> str:
    """This machine's name as it goes into temporary file names ([A-Za-z0-9-], 32 at most)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32]


def temp_prefix() -> str:
    """The name start of this process's temporary files: ``.keras-seran-tmp-<pid>@<host>.``."""
    return f"{TEMP_PREFIX}{os.getpid()}@{_host()}."


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` names a temporary file of this package (being written now, or left by
    an interrupted write): never an input, never a result."""
    name = Path(path).name
    if name.startswith(TEMP_PREFIX):
        return True
    m = _LEGACY_TEMP_RE.match(name)
    return bool(m) and _full_suffix(Path(m.group("name"))) == m.group("suffix")


def _writer_gone(name: str) -> bool:
    """Whether the process that made temporary file ``name`` has ended (same machine only;
    POSIX only: elsewhere, and for a process of another user or machine, False)."""
    m = _TEMP_RE.match(name)
    if not m or os.name != "posix" or m.group("host") != _host():
        return False
    try:
        os.kill(int(m.group("pid")), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


def find_leftovers(folder: str | Path, max_age_s: float = LEFTOVER_AGE_S) -> list[Path]:
    """The temporary files in ``folder`` (not its subfolders) left by interrupted writes: those
    whose writer process is gone (same machine) or untouched for ``max_age_s`` seconds.

    A temporary file a live process is writing right now is not one of them.
    """
    d = Path(folder).expanduser()
    out = []
    now = time.time()
    try:
        entries = list(os.scandir(d))
    except OSError:
        return []
    for e in entries:
        if not is_temporary(e.name):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if _writer_gone(e.name) or age > max_age_s:
            out.append(d / e.name)
    return sorted(out)


def remove_leftovers(folder: str | Path, max_age_s: float = LEFTOVER_AGE_S) -> list[Path]:
    """Remove :func:`find_leftovers` of ``folder``; one warning line names what was removed
    (and what could not be). Returns the removed files."""
    removed, kept = [], []
    for f in find_leftovers(folder, max_age_s):
        try:
            f.unlink()
            removed.append(f)
        except FileNotFoundError:
            pass
        except OSError:
            kept.append(f)
    if removed or kept:
        names = ", ".join(f.name for f in removed[:3]) + (" ..." if len(removed) > 3 else "")
        msg = (
            f"{Path(folder)}: removed {len(removed)} temporary file(s) left by an "
            f"interrupted earlier write ({names})"
            if removed
            else ""
        )
        if kept:
            msg += ("; " if msg else f"{Path(folder)}: ") + (
                f"cannot remove {len(kept)} leftover temporary file(s) "
                f"({', '.join(f.name for f in kept[:3])}); delete them by hand"
            )
        warnings.warn(msg, stacklevel=2)  # attributed to this package: one line in the CLI
    return removed


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when two paths name the same file (resolved paths, or the same inode when both exist)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def ensure_writable_dir(folder: str | Path, create: bool = True) -> Path:
    """Make sure files can be created in ``folder``.

    ``create=True``: the folder is created with its parents. ``create=False``: nothing is
    created; a missing folder passes when its nearest existing parent is a writable folder (it
    is made at write time, :func:`atomic_path`), so a run that fails before writing leaves no
    empty folders behind. Checks ``os.access(W_OK | X_OK)`` and then really creates and deletes
    a temporary file (root passes ``os.access`` on a read-only folder mount, and ACLs can
    disagree with it). Raises OutputPathError naming the folder otherwise.
    """
    d = Path(folder).expanduser()
    if d.exists() and not d.is_dir():
        raise OutputPathError(d, "is a file, not a folder; choose an output folder")
    if not d.exists():
        if not create:
            parent = d.absolute().parent
            while not parent.exists():
                parent = parent.parent
            if not parent.is_dir():
                raise OutputPathError(d, f"cannot create the output folder: {parent} is a file")
            _probe(parent, d)
            return d
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputPathError(
                d,
                f"cannot create the output folder ({e.strerror or e}); "
                "choose a folder you can write to",
            ) from None
    _probe(d, d)
    return d


def _probe(folder: Path, named: Path) -> None:
    """Create and delete a temporary file in ``folder``; OutputPathError naming ``named``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(
            named,
            f"{'' if folder == named else f'{folder}: '}output folder is "
            "not writable (permission denied); choose a folder you can "
            "write to or fix its permissions",
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix="-probe", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputPathError(
            named,
            f"cannot create files in the output folder {folder} "
            f"({e.strerror or e}); choose a folder you can write to",
        ) from None


def check_output_path(
    output: str | Path,
    input_path: str | Path | None = None,
    overwrite: bool = False,
    suffixes: tuple[str, ...] | None = NIFTI_SUFFIXES,
) -> Path:
    """Validate one output file before any work is done; returns it as a Path.

    Raises OutputPathError when: it is the input file; it exists and ``overwrite`` is False; it is
    an existing folder; its name lacks one of ``suffixes``; its folder cannot be created or written.
    """
    out = Path(output).expanduser()
    if input_path is not None and same_file(out, input_path):
        raise OutputPathError(
            out,
            "output is the input file; refusing to overwrite the input, choose another output path",
        )
    if out.is_dir():
        raise OutputPathError(out, "is an existing folder, not a file")
    if suffixes and not any(str(out).lower().endswith(s) for s in suffixes):
        raise OutputPathError(out, f"output file name must end with {' or '.join(suffixes)}")
    if out.exists() and not overwrite:
        raise OutputPathError(out, "output exists; pass --overwrite (overwrite=True) to replace it")
    ensure_writable_dir(out.parent, create=False)
    return out


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); on success move it onto ``path``.

    The temporary file is ``.keras-seran-tmp-<pid>@<host>.<random>-<name>`` (see
    :func:`is_temporary`); leftovers of interrupted writes in that folder are removed first
    (:func:`remove_leftovers`). On any exception (Ctrl-C and SIGTERM included) the temporary
    file is removed, ``path`` is left as it was, and the folders made here for it are removed
    again while still empty.
    """
    dest = Path(path).expanduser()
    made = _missing_dirs(dest.parent)
    if not made:
        remove_leftovers(dest.parent)
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # the final name (its end when long: it carries the suffix writers go by) keeps
            # the file name within the usual 255-byte limit
            fd, tmp = tempfile.mkstemp(
                prefix=temp_prefix(), suffix=f"-{dest.name[-160:]}", dir=dest.parent
            )
        except OSError as e:
            raise OutputPathError(
                dest, f"cannot create a file in {dest.parent} ({e.strerror or e})"
            ) from None
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            try:
                os.chmod(tmp_path, 0o666 & ~_umask())
            except OSError:
                pass
            os.replace(tmp_path, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
            raise
    except BaseException:
        _remove_empty_dirs(made)
        raise


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders of ``folder``'s chain that do not exist yet, deepest first."""
    out, d = [], folder.absolute()
    while not d.exists() and d != d.parent:
        out.append(d)
        d = d.parent
    return out


def _remove_empty_dirs(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while each is empty; stop at the first that is not."""
    for d in folders:
        try:
            d.rmdir()  # fails on a folder something else has written into meanwhile
        except OSError:
            return


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_nifti(img: Any, path: str | Path) -> Path:
    """Write a nibabel image atomically to ``path`` (.nii or .nii.gz; compression from the suffix)."""
    dest = Path(path).expanduser()
    if nifti_suffix(dest) is None:
        raise OutputPathError(dest, "output file name must end with .nii or .nii.gz")
    with atomic_path(dest) as tmp:
        try:
            img.to_filename(str(tmp))
        except OSError as e:
            raise OutputPathError(dest, f"writing failed ({e.strerror or e})") from None
    return dest


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, e.g. .png)."""
    dest = Path(path).expanduser()
    with atomic_path(dest) as tmp:
        fig.savefig(str(tmp), format=dest.suffix.lstrip(".") or "png", **kwargs)
    return dest


def atomic_save_model(model: Any, path: str | Path) -> None:
    """Save a Keras model (``.keras``) so that ``path`` is either the old file or the complete
    new one."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def atomic_write_json(data: dict, path: str | Path) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: str | Path, what: str, advice: str) -> dict:
    """The JSON object in ``path``; InputDataError naming the file, ``what`` it holds and the
    ``advice`` when it cannot be read or holds no object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(
            path, f"{what} cannot be read ({type(exc).__name__}: {exc}); {advice}"
        ) from None
    if not isinstance(data, dict):
        raise InputDataError(path, f"{what} is not a JSON object; {advice}")
    return data


def output_for_input(input_path: str | Path, output: str | Path) -> Path:
    """The output file for one input: ``output`` itself when it names a NIfTI file, else a file of
    the input's name inside the folder ``output`` (an existing folder, or a path ending in '/');
    an input that is not NIfTI (a DICOM series folder, a .dcm file) gives ``<its stem>.nii.gz``."""
    out = Path(output).expanduser()
    if out.is_dir() or str(output).endswith(("/", os.sep)):
        src = Path(input_path)
        name = src.name if nifti_suffix(src) else f"{src.stem if src.suffix else src.name}.nii.gz"
        return out / name
    if nifti_suffix(out) is None:
        raise OutputPathError(
            out,
            "output must be a .nii/.nii.gz file or an existing folder "
            "(end the path with '/' to create one)",
        )
    return out
