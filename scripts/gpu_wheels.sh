#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what bench/gpu_check.py needs on the lent GPU machine, which has
# Python 3.12, JAX and PyTorch with CUDA, numpy, OpenCV, Pillow, tqdm, h5py, ml-dtypes, rich and
# absl-py, but no TensorFlow, no Keras and no internet (/work/.library/device/KINDS.md):
#   - the keras_seran wheel built from this checkout (bundled weights and sample inside);
#   - keras and the two of its requirements the image lacks (namex, optree), and nibabel;
#   - the 256^3 T1 training volume from ../shared/data (not carried otherwise), when present.
# Run it in the checkout the device tool sends, right before the device command (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."

KERAS=3.15.1 NAMEX=0.1.0 OPTREE=0.20.0 NIBABEL=5.4.2
VOLUME=${KERAS_SERAN_SHARED_DATA:-../shared/data}/t1_head_256iso.nii.gz

rm -rf .whl
mkdir -p .whl/data
python3 -m pip wheel -q --no-deps -w .whl .
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl \
    "keras==$KERAS" "namex==$NAMEX" "optree==$OPTREE" "nibabel==$NIBABEL"
if [ -f "$VOLUME" ]; then
    cp "$VOLUME" .whl/data/
else
    echo "note: $VOLUME is absent; the check will train on the bundled T1 slab" >&2
fi
ls -l .whl .whl/data
du -sh .whl
