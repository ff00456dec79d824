"""``train``: SERAN (or a baseline) through plain ``model.compile`` / ``model.fit``.

Nothing here replaces Keras's loop: it builds the datasets and the model, compiles with the
paper's loss/optimiser/schedule, adds the callbacks a long run needs, and calls ``fit``. A run
killed at any time resumes from ``RUN_DIR/last.keras`` at the right epoch with its optimizer
state (``resume=True``); a run directory that already holds a checkpoint is never overwritten
by a fresh run.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import keras

from keras_seran.config import (
    MIXED_PRECISION_KINDS,
    TRAINABLE_ARCHS,
    DataConfig,
    TrainConfig,
    to_dict,
)
from keras_seran.devices import backend, has_tensorflow
from keras_seran.runs import (
    LAST,
    LOG,
    RUN_CONFIG,
    TENSORBOARD,
    describe_sources,
    prepare_run_dir,
    record_resume,
    trim_log,
    write_run_config,
)
from keras_seran.training.callbacks import RunCheckpoint
from keras_seran.training.optim import check_patch_size, compile_model


def build_model(arch: str, scale: int, preset: str) -> keras.Model:
    from keras_seran.models import build

    if arch not in TRAINABLE_ARCHS:  # bicubic has no weights to train
        raise ValueError(f"cannot train architecture {arch!r}; choose one of {TRAINABLE_ARCHS}")
    return build(arch, scale, preset)


def transfer_weights(model: keras.Model, source: keras.Model) -> list[str]:
    """Copy the weights of every layer of ``source`` whose name and weight shapes match.

    Used to start x3/x4 training from a trained x2 network, as EDSR does: everything but the
    upsampler matches (and x4's first x2 step matches x2's upsampler). Returns the names of the layers copied.
    """
    copied = []
    by_name = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        mine, theirs = layer.get_weights(), other.get_weights()
        if len(mine) == len(theirs) and all(a.shape == b.shape for a, b in zip(mine, theirs)):
            layer.set_weights(theirs)
            copied.append(layer.name)
    return copied


def mixed_policy(kind: bool | str) -> str:
    """Keras dtype policy for ``TrainConfig.mixed_precision`` (True: float16 on GPU, else bfloat16)."""
    if kind is True:
        from keras_seran.devices import gpu_count

        kind = "float16" if gpu_count() else "bfloat16"
    if kind not in MIXED_PRECISION_KINDS:
        raise ValueError(f"mixed_precision must be a bool, 'float16' or 'bfloat16', got {kind!r}")
    return f"mixed_{kind}"


@contextlib.contextmanager
def _dtype_policy(mixed: bool | str):
    """Build (or reload) the model under the mixed policy, then restore the global policy so
    models built after training are float32 again (the trained model keeps its own policy)."""
    previous = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy(mixed_policy(mixed))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_backend(train_cfg: TrainConfig) -> None:
    """UsageError when ``train_cfg`` asks for what the running backend lacks: tf.distribute
    strategies need TensorFlow, keras.distribution.DataParallel needs JAX."""
    from keras_seran.training.distribute import check_backend as check_distribute

    check_distribute(train_cfg.distribute, backend())


def train(
    sources: Any,
    scale: int = 2,
    run_dir: str | Path = "runs/seran_x2",
    *,
    arch: str = "seran",
    preset: str = "small",
    data: DataConfig | None = None,
    train_cfg: TrainConfig | None = None,
    resume: bool = False,
    datasets: tuple | None = None,
    verbose: int | str = "auto",
    tensorboard: bool = True,
    init_from: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> keras.callbacks.History:
    """Train and checkpoint a model; returns the Keras ``History``.

    Args:
        sources: MR data for :func:`keras_seran.data.make_datasets` (folder, glob, files, arrays).
        datasets: optional ready ``(train_ds, val_ds)``; then ``sources`` is only recorded.
        resume: continue the run in ``run_dir`` from its last checkpoint.
        init_from: a model (``.keras`` file or bundled name such as ``x2``) whose matching
            layers initialise a fresh run, e.g. an x2 network to start x3/x4 training.
        callbacks: extra Keras callbacks, run after the package's own.

    With ``train_cfg.distribute`` (:mod:`keras_seran.training.distribute`) the batch size is
    the global batch, and only the chief worker writes ``run_dir``; the other workers save
    their checkpoints to a temporary folder, deleted at the end.
    """
    from keras_seran.training.distribute import place, prepare_model

    data = data or DataConfig()
    train_cfg = train_cfg or TrainConfig()
    check_backend(train_cfg)
    check_patch_size(data, scale)
    check_datasets(datasets, train_cfg)
    placement = place(train_cfg.distribute, data.batch_size)  # first: before TensorFlow runs
    if placement.strategy is not None:
        print(placement.describe(data.batch_size))
    if not placement.is_chief:
        print(
            f"worker {placement.process_index}: the chief writes {run_dir}; this worker's "
            "checkpoints go to a temporary folder, deleted at the end"
        )
    run_dir = Path(run_dir)
    chief = placement.is_chief
    created = not run_dir.exists()
    # a worker only reads a resumed run's state; a fresh run's directory is the chief's
    state = prepare_run_dir(run_dir, resume) if chief or resume else None
    with placement.scope(), contextlib.ExitStack() as cleanup:
        try:
            model, initial_epoch, (train_ds, val_ds) = _start(
                sources,
                scale,
                run_dir,
                state,
                arch,
                preset,
                data,
                train_cfg,
                datasets,
                init_from,
                placement,
            )
            prepare_model(model, placement)
        except BaseException:
            # a fresh run that failed before writing anything leaves no empty run directory
            if chief and created and run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            raise
        if state is not None and chief:
            trim_log(run_dir / LOG, initial_epoch)
            if (run_dir / RUN_CONFIG).exists():
                record_resume(run_dir, train_cfg, initial_epoch, sources)
        monitor = "val_psnr" if val_ds is not None else "psnr"
        extra = list(callbacks or [])
        # every worker saves (a multi-worker save is collective); the chief's is the run's
        saves = (
            run_dir
            if chief
            else Path(
                cleanup.enter_context(
                    tempfile.TemporaryDirectory(
                        prefix=f"keras-seran-worker{placement.process_index}-"
                    )
                )
            )
        )
        callbacks = [
            RunCheckpoint(
                saves,
                every=train_cfg.checkpoint_every_epochs,
                monitor=monitor,
                best=None if state is None else state.get("best"),
            )
        ]
        if chief:
            callbacks.append(
                keras.callbacks.CSVLogger(str(run_dir / LOG), append=state is not None)
            )
        if chief and tensorboard and not has_tensorflow():
            print(
                "TensorBoard logs need TensorFlow (not installed): skipped; log.csv has the metrics"
            )
        elif chief and tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD), write_graph=False)
            )
        if train_cfg.early_stop_patience:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor, mode="max", patience=train_cfg.early_stop_patience
                )
            )
        callbacks.extend(extra)
        return model.fit(
            train_ds,
            epochs=train_cfg.epochs,
            steps_per_epoch=train_cfg.steps_per_epoch,
            validation_data=val_ds,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )


def check_datasets(datasets: tuple | None, train_cfg: TrainConfig) -> None:
    """ValueError when a ready endless training dataset (:class:`PatchPyDataset`) was made with
    another number of steps per epoch than ``train_cfg`` gives ``fit`` (its stream and its
    guard against an epoch that never ends count in its own steps)."""
    train_ds = datasets[0] if datasets else None
    if (
        getattr(train_ds, "num_batches", 0) is None
        and hasattr(train_ds, "__len__")
        and len(train_ds) != train_cfg.steps_per_epoch
    ):
        raise ValueError(
            f"the training dataset has {len(train_ds)} steps per epoch but "
            f"train_cfg.steps_per_epoch is {train_cfg.steps_per_epoch}; make them "
            "agree (make_pydatasets(..., steps_per_epoch=...))"
        )


def _start(
    sources, scale, run_dir, state, arch, preset, data, train_cfg, datasets, init_from, placement
):
    """(compiled model, initial epoch, (train_ds, val_ds)) of a fresh or resumed run; a fresh
    run's settings are written to ``run_config.json`` (by the chief) once everything is
    built."""
    if datasets is None:
        # resume the patch stream where the checkpoint left it
        start_epoch = 0 if state is None else int(state["epoch"])
        if backend() == "tensorflow":
            from keras_seran.data import make_datasets

            # a global validation batch: one copy of the slice per replica
            datasets = make_datasets(
                sources,
                scale,
                data,
                start_batch=start_epoch * train_cfg.steps_per_epoch,
                val_copies=placement.replicas,
            )
        else:  # JAX / PyTorch: the numpy PyDatasets (no TensorFlow needed)
            from keras_seran.data import make_pydatasets

            # each process feeds its share of the global batch (its local replicas)
            datasets = make_pydatasets(
                sources,
                scale,
                data,
                train_cfg.steps_per_epoch,
                start_epoch,
                process_index=placement.process_index,
                process_count=placement.process_count,
                val_copies=placement.replicas // placement.process_count,
            )
    with _dtype_policy(train_cfg.mixed_precision):
        if state is not None:
            model = load_checkpoint(run_dir / LAST)
            initial_epoch = int(state["epoch"])
        else:
            model = build_model(arch, scale, preset)
            if init_from is not None:
                from keras_seran.registry import load_model

                copied = transfer_weights(model, load_model(init_from))
                if not copied:
                    from keras_seran.errors import InputDataError

                    raise InputDataError(
                        init_from,
                        f"no layer matches the {arch} {preset} "
                        f"x{scale} network (another architecture or "
                        "preset?); nothing to start from",
                    )
                print(f"initialised {len(copied)} of {len(model.layers)} layers from {init_from}")
            model = compile_model(model, train_cfg, scale)
            initial_epoch = 0
        if state is None and placement.is_chief:
            write_run_config(
                run_dir,
                {
                    "arch": arch,
                    "preset": preset,
                    "scale": scale,
                    "sources": describe_sources(sources),
                    "data": to_dict(data),
                    "train": to_dict(train_cfg),
                    "init_from": None if init_from is None else str(init_from),
                    "keras": keras.__version__,
                    "started": time.strftime("%F %T"),
                },
            )
    return model, initial_epoch, datasets


def load_checkpoint(path: Path) -> keras.Model:
    """The compiled model and optimizer state of ``last.keras``; InputDataError naming the file
    when it cannot be loaded (Keras reports a damaged zip as "file not found")."""
    import zipfile

    from keras_seran.errors import InputDataError

    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise InputDataError(
            path,
            f"cannot load the checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it is "
            "damaged: restore it or start a new run",
        ) from None
