"""Loss, optimiser and schedule of the paper, and ``compile_model`` that wires them to a model.

L1 loss; Adam(beta1=0.9, beta2=0.999, eps=1e-8); learning rate 1e-4 halved every 200 epochs
(a staircase exponential decay counted in optimizer steps); optional gradient clipping.
"""

from __future__ import annotations

import keras

from keras_seran.config import DataConfig, TrainConfig
from keras_seran.metrics import SSIM_WINDOW, PSNRMetric, SSIMMetric, min_lr_side


def step_schedule(cfg: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr * factor ** floor(step / (decay_epochs * steps_per_epoch)): the paper's halving."""
    return keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate,
        decay_steps=max(1, cfg.lr_decay_epochs * cfg.steps_per_epoch),
        decay_rate=cfg.lr_decay_factor,
        staircase=True,
    )


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(
        step_schedule(cfg),
        beta_1=cfg.beta_1,
        beta_2=cfg.beta_2,
        epsilon=cfg.epsilon,
        clipnorm=cfg.clipnorm,
    )


def compile_model(model: keras.Model, cfg: TrainConfig, scale: int) -> keras.Model:
    """Compile with L1 loss, the paper's Adam schedule, and PSNR/SSIM (border = scale) metrics."""
    model.compile(
        optimizer=make_optimizer(cfg),
        loss="mean_absolute_error",
        metrics=[PSNRMetric(border=scale), SSIMMetric(border=scale)],
    )
    return model


def min_patch_size(scale: int) -> int:
    """Smallest LR patch side the training metrics accept at ``scale``
    (:func:`keras_seran.metrics.min_lr_side`)."""
    return min_lr_side(scale)


def check_patch_size(data: DataConfig, scale: int) -> None:
    """UsageError naming the minimum when ``data.patch_size`` is too small for the metrics
    at ``scale`` (checked before a run starts, not as a traceback in its first step)."""
    minimum = min_patch_size(scale)
    if data.patch_size < minimum:
        from keras_seran.errors import UsageError

        hr = data.patch_size * scale
        raise UsageError(
            f"patch_size {data.patch_size} is too small at x{scale}: its "
            f"{hr}-pixel HR patch, cropped by {scale} pixels per side for "
            f"PSNR/SSIM, is under SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} "
            f"window; use a patch size >= {minimum} (--patch-size)"
        )
