"""Finding MR files: which paths a user means, what their names say (IXI/BIDS subject and
contrast), which files are hidden. Names (and a DICOM file's preamble) only; nothing here
reads an image (see :mod:`.readers`).

Every problem raises :class:`~keras_seran.errors.InputDataError` naming what was searched.
"""

from __future__ import annotations

import glob as _glob
import re
from collections.abc import Iterable
from pathlib import Path

from keras_seran.errors import InputDataError
from keras_seran.files import is_temporary

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SLICE_SUFFIXES = (".png", ".npy", ".dcm", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

# IXI file names: IXI<3 digits>-<site>-<4 digits>-<contrast>[-<volume>].nii[.gz]
# e.g. IXI002-Guys-0828-T1.nii.gz, IXI012-HH-1211-T2.nii.gz, IXI002-Guys-0828-DTI-00.nii.gz
_IXI_RE = re.compile(
    r"^(?P<subject>IXI\d{3})-(?P<site>[A-Za-z]+)-(?P<session>\d{4})-(?P<contrast>T1|T2|PD|MRA|DTI)"
    r"(?:-(?P<index>\d+))?(?:\.nii(?:\.gz)?)?$",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# names


def _name(path: str | Path) -> str:
    return Path(path).name


def is_nifti(path: str | Path) -> bool:
    """True when the file name ends with .nii or .nii.gz (case-insensitive)."""
    return _name(path).lower().endswith(NIFTI_SUFFIXES)


def parse_ixi_name(name: str | Path) -> tuple[str, str] | None:
    """``"IXI002-Guys-0828-T1.nii.gz"`` -> ``("IXI002", "T1")``; None when not an IXI name.

    The subject id (IXI + 3 digits) identifies the person: every contrast of one subject shares it,
    which is what a train/validation split must keep together.
    """
    m = _IXI_RE.match(_name(name))
    if not m:
        return None
    return m.group("subject").upper(), m.group("contrast").upper()


# BIDS-like suffixes, e.g. sub-01_T1w.nii.gz, sub-01_ses-1_T2w.nii.gz, sub-01_PD.nii.gz
_BIDS_RE = re.compile(
    r"^(?P<subject>sub-[A-Za-z0-9]+).*_(?P<contrast>T1w|T2w|PDw|PD)(?:\.nii(?:\.gz)?)?$"
)


def parse_contrast(name: str | Path) -> tuple[str, str] | None:
    """(subject_id, contrast) from an IXI name, or else a BIDS name (``sub-01_T1w`` -> T1); or None."""
    parsed = parse_ixi_name(name)
    if parsed:
        return parsed
    m = _BIDS_RE.match(_name(name))
    if m:
        c = m.group("contrast").upper().rstrip("W")
        return m.group("subject"), c
    return None


#: A subject id at the start of a file name, whatever follows it: IXI (IXI002-Guys-0828-...) or
#: BIDS (sub-01_ses-1_...), so a skull-stripped ``IXI002-...-T1_brain`` or a ``sub-01_FLAIR``
#: stays with the rest of its subject in a split.
_SUBJECT_RE = re.compile(
    r"^(?:(?P<ixi>IXI\d{3})(?=[-_.])|(?P<bids>sub-[A-Za-z0-9]+)(?=[_.]))", re.IGNORECASE
)


def subject_of(path: str | Path) -> str:
    """The subject a file belongs to: the IXI or BIDS subject id its name starts with, whatever
    contrast or suffix follows (every file of a subject must land on one side of a split), else
    the file path itself."""
    m = _SUBJECT_RE.match(_name(path))
    if m:
        return m.group("ixi").upper() if m.group("ixi") else m.group("bids")
    return str(path)


def looks_like_dicom(p: Path) -> bool:
    """Whether ``p`` is a DICOM file: a .dcm/.ima suffix or the "DICM" preamble."""
    if p.suffix.lower() in (".dcm", ".ima"):
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def is_hidden(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is hidden (name starting with ".");
    this package's temporary files (``.keras-seran-tmp-...``, being written or left by an
    interrupted write: :func:`keras_seran.files.is_temporary`) are hidden."""
    rel = Path(path).relative_to(root)
    return any(part.startswith(".") for part in rel.parts)


def check_not_temporary(path: str | Path) -> None:
    """InputDataError when ``path`` is a temporary file of this package (an incomplete write,
    :func:`keras_seran.files.is_temporary`): named on its own, it is still no input."""
    if is_temporary(path):
        raise InputDataError(
            path,
            "is a temporary file of an unfinished keras-seran write "
            "(being written, or left by an interrupted run), not an "
            "input; use the finished file",
        )


def is_series_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder :func:`find_volumes` takes as one DICOM volume: it holds
    DICOM files (directly; hidden ones left out) and no NIfTI file (at any depth)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return False
    if any(q.is_file() and is_nifti(q) and not is_hidden(q, p) for q in p.rglob("*")):
        return False
    return any(q.is_file() and not is_hidden(q, p) and looks_like_dicom(q) for q in p.iterdir())


def has_contrast(path: str | Path, contrast: str) -> bool:
    """Whether the IXI/BIDS name of ``path`` carries ``contrast`` ("T1", "t2", ...)."""
    return (parse_contrast(path) or (None, None))[1] == contrast.upper()


def find_volumes(
    dir_or_glob: str | Path | Iterable[str | Path], contrast: str | None = None
) -> list[Path]:
    """Sorted list of the NIfTI files a user points at.

    ``dir_or_glob``: a folder (searched recursively for *.nii / *.nii.gz, hidden files and
    folders left out: they are our temporary files or other tools' leftovers), a glob pattern
    (``"data/IXI*-T2.nii.gz"``), a single file, or a list of any of these. A folder holding no NIfTI
    but DICOM files is returned as one DICOM series. ``contrast`` ("T1", "T2", "PD", ...) keeps the
    files whose IXI (or BIDS) name carries that contrast.

    Raises InputDataError when nothing matches (naming what was searched and what was found).
    """
    if isinstance(dir_or_glob, (list, tuple)):
        out: set[Path] = set()
        for item in dir_or_glob:
            out.update(find_volumes(item, contrast))
        return sorted(out)
    src = str(dir_or_glob)
    p = Path(src).expanduser()
    if p.is_dir():
        found = sorted(
            q for q in p.rglob("*") if q.is_file() and is_nifti(q) and not is_hidden(q, p)
        )
        if not found:
            if is_series_folder(p):
                return [p]
            raise InputDataError(
                p,
                "folder holds no NIfTI file (*.nii, *.nii.gz) and no DICOM "
                "series; point at the folder of your volumes or use a glob",
            )
    elif p.is_file():
        check_not_temporary(p)
        found = [p]
    elif any(ch in src for ch in "*?["):
        found = sorted(
            Path(q)
            for q in _glob.glob(str(p), recursive=True)
            if Path(q).is_file() and not is_temporary(q)
        )
        if not found:
            raise InputDataError(src, "glob pattern matches no file; check the pattern and folder")
    else:
        raise InputDataError(p, "no such file or folder; check the path")
    if contrast is None:
        return found
    want = contrast.upper()
    kept = [q for q in found if has_contrast(q, want)]
    if not kept:
        seen = sorted({c for q in found if (c := (parse_contrast(q) or (None, None))[1])})
        raise InputDataError(
            src,
            f"no file with contrast {want!r} among {len(found)} file(s); "
            f"contrasts found: {seen or 'none (names not IXI/BIDS style)'}; "
            "use contrast=None to take every file",
        )
    return kept
