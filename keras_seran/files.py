"""File safety: atomic writes and output checks, for every file the package writes (no TensorFlow).

Every file is first written to a hidden temporary file in the destination folder and then moved
into place with ``os.replace`` (atomic on one file system): the output appears only once it is
complete, and a failure (or Ctrl-C, or SIGTERM under the command line) leaves nothing behind,
not even the folders made for it. The input is never overwritten, and an existing output only
with ``overwrite=True``. Writers: :func:`save_nifti`, :func:`save_figure`,
:func:`atomic_save_model`, :func:`atomic_write_json`, and :func:`atomic_path` for anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from keras_seran.errors import InputDataError, OutputPathError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_suffix(path: str | Path) -> str | None:
    """".nii.gz" or ".nii" when ``path`` ends with one (case-insensitive), else None."""
    low = str(path).lower()
    for suf in NIFTI_SUFFIXES:
        if low.endswith(suf):
            return str(path)[-len(suf):]
    return None


def _full_suffix(path: Path) -> str:
    return nifti_suffix(path) or path.suffix


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
            raise OutputPathError(d, f"cannot create the output folder ({e.strerror or e}); "
                                     "choose a folder you can write to") from None
    _probe(d, d)
    return d


def _probe(folder: Path, named: Path) -> None:
    """Create and delete a temporary file in ``folder``; OutputPathError naming ``named``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(named, f"{'' if folder == named else f'{folder}: '}output folder is "
                                     "not writable (permission denied); choose a folder you can "
                                     "write to or fix its permissions")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".keras-seran-probe-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputPathError(named, f"cannot create files in the output folder {folder} "
                                     f"({e.strerror or e}); choose a folder you can write to"
                              ) from None


def check_output_path(output: str | Path, input_path: str | Path | None = None,
                      overwrite: bool = False, suffixes: tuple[str, ...] | None = NIFTI_SUFFIXES
                      ) -> Path:
    """Validate one output file before any work is done; returns it as a Path.

    Raises OutputPathError when: it is the input file; it exists and ``overwrite`` is False; it is
    an existing folder; its name lacks one of ``suffixes``; its folder cannot be created or written.
    """
    out = Path(output).expanduser()
    if input_path is not None and same_file(out, input_path):
        raise OutputPathError(out, "output is the input file; refusing to overwrite the input, "
                                   "choose another output path")
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

    On any exception (Ctrl-C and SIGTERM included) the temporary file is removed, ``path`` is
    left as it was, and the folders made here for it are removed again while still empty.
    """
    dest = Path(path).expanduser()
    suffix = _full_suffix(dest)
    made = _missing_dirs(dest.parent)
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{suffix}",
                                       dir=dest.parent)
        except OSError as e:
            raise OutputPathError(dest, f"cannot create a file in {dest.parent} "
                                        f"({e.strerror or e})") from None
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
            d.rmdir()          # fails on a folder something else has written into meanwhile
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
        raise InputDataError(path, f"{what} cannot be read ({type(exc).__name__}: {exc}); "
                                   f"{advice}") from None
    if not isinstance(data, dict):
        raise InputDataError(path, f"{what} is not a JSON object; {advice}")
    return data


def output_for_input(input_path: str | Path, output: str | Path) -> Path:
    """The output file for one input: ``output`` itself when it names a NIfTI file, else a file of
    the input's name inside the folder ``output`` (an existing folder, or a path ending in '/')."""
    out = Path(output).expanduser()
    if out.is_dir() or str(output).endswith(("/", os.sep)):
        return out / Path(input_path).name
    if nifti_suffix(out) is None:
        raise OutputPathError(out, "output must be a .nii/.nii.gz file or an existing folder "
                                   "(end the path with '/' to create one)")
    return out
