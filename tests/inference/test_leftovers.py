"""What a killed write leaves: a recognisable temporary file that is never read as an input and
that the next write into its folder removes (``keras_seran.files``: ``is_temporary``,
``remove_leftovers``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_seran import files, samples
from keras_seran.data.degrade import bicubic_upscale
from keras_seran.data.io import find_volumes, load_volume
from keras_seran.errors import InputDataError
from keras_seran.inference import SuperResolver
from keras_seran.inference.command import predict_paths

REPO = Path(__file__).resolve().parents[2]

# Writes the bundled low-res T1 with files.save_nifti; once half of it is on disk (the rest cut
# off, as a write stopped midway), says so in the marker file and waits to be killed.
_KILLED_WRITE = """
import pathlib, sys, time
import nibabel as nib
from keras_seran import files, samples

real = nib.Nifti1Image.to_filename

def half_written(self, filename, **kw):
    real(self, filename, **kw)
    p = pathlib.Path(filename)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    pathlib.Path(sys.argv[1]).write_text(str(filename))
    time.sleep(120)

nib.Nifti1Image.to_filename = half_written
files.save_nifti(nib.load(str(samples.T1_LOWRES)), sys.argv[2])
"""


def _numpy_resolver() -> SuperResolver:
    """A resolver on a numpy 'network' (bicubic x2): no Keras needed for the file handling."""
    return SuperResolver(lambda x: bicubic_upscale(x[..., 0], 2)[..., None], scale=2)


def _killed_write(tmp_path: Path, dest: Path) -> Path:
    """Run a write of ``dest`` in a subprocess, ``kill -9`` it mid-write; the file it leaves."""
    script, marker = tmp_path / "killed_write.py", tmp_path / "writing.txt"
    script.write_text(_KILLED_WRITE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(marker), str(dest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return Path(marker.read_text())


@pytest.mark.skipif(os.name != "posix", reason="kill -9 is POSIX")
def test_a_killed_write_leaves_a_file_the_next_predict_removes_and_never_reads(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(samples.T1_LOWRES, out / "scan.nii.gz")  # a real input there too
    left = _killed_write(tmp_path, out / "v1.nii.gz")
    assert left.parent == out and left.exists() and not (out / "v1.nii.gz").exists()
    assert files.is_temporary(left) and left.name.startswith(".keras-seran-tmp-")
    assert left.name.endswith("-v1.nii.gz")  # the writer's suffix kept
    assert files.find_leftovers(out) == [left]  # its writer is gone

    # never an input: not listed in the folder, not by a glob, refused when named
    assert find_volumes(out) == [out / "scan.nii.gz"]
    assert find_volumes(str(out / "*.nii.gz")) == [out / "scan.nii.gz"]
    with pytest.raises(InputDataError, match="temporary file of an unfinished keras-seran write"):
        load_volume(left)
    with pytest.raises(InputDataError, match="temporary file"):
        find_volumes(left)
    resolver = _numpy_resolver()
    done = predict_paths(resolver, out, tmp_path / "sr/")
    assert [Path(s["input"]).name for s in done] == ["scan.nii.gz"]

    # the next write into the folder removes it, in one warning line naming it
    with pytest.warns(UserWarning, match="removed 1 temporary file.*interrupted") as rec:
        resolver.predict_file(out / "scan.nii.gz", out / "scan_sr.nii.gz")
    assert left.name in str(rec[0].message) and "\n" not in str(rec[0].message)
    assert not left.exists()
    assert sorted(p.name for p in out.iterdir()) == ["scan.nii.gz", "scan_sr.nii.gz"]


def test_only_leftovers_are_removed(tmp_path):
    """A temporary file a live process writes is kept; one whose writer is gone, one untouched
    for LEFTOVER_AGE_S, and an old one of the earlier naming go; other hidden files stay."""
    src = samples.T1_LOWRES.read_bytes()[:1000]
    live = tmp_path / f"{files.temp_prefix()}abcd1234-a.nii.gz"  # this process: alive
    dead = tmp_path / f"{files.TEMP_PREFIX}{_dead_pid()}@{files._host()}.efgh5678-b.nii.gz"
    stale = tmp_path / f"{files.TEMP_PREFIX}1@other-host.ijkl9012-c.keras"  # another machine
    legacy = tmp_path / ".d.json.mnop3456.tmp.json"
    legacy_fresh = tmp_path / ".e.nii.gz.qrst7890.tmp.nii.gz"
    other = tmp_path / ".DS_Store"
    for f in (live, dead, stale, legacy, legacy_fresh, other):
        f.write_bytes(src)
    hours_ago = time.time() - 2 * files.LEFTOVER_AGE_S
    for f in (stale, legacy, other):
        os.utime(f, (hours_ago, hours_ago))
    assert not files.is_temporary(other) and files.is_temporary(legacy_fresh)
    with pytest.warns(UserWarning, match="removed 3 temporary file"):
        removed = files.remove_leftovers(tmp_path)
    assert sorted(removed) == sorted([dead, stale, legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, legacy_fresh.name, other.name]
    )


def test_the_temporary_file_of_a_write_is_recognisable_while_it_is_written(tmp_path):
    seen = []
    with files.atomic_path(tmp_path / "model.keras") as tmp:
        seen.append(tmp)
        assert files.is_temporary(tmp) and tmp.name.endswith("-model.keras")
        assert files.find_leftovers(tmp_path) == []  # being written: not a leftover
        tmp.write_bytes(b"x")
    assert not seen[0].exists() and (tmp_path / "model.keras").read_bytes() == b"x"


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_long_output_name_keeps_its_suffix_within_the_name_limit(tmp_path):
    name = "x" * 240 + ".nii.gz"
    with files.atomic_path(tmp_path / name) as tmp:
        assert len(tmp.name) <= 255 and tmp.name.endswith(".nii.gz")
        tmp.write_bytes(np.zeros(4).tobytes())
    assert (tmp_path / name).exists()
