"""Joint training of the configured streams on one fold, with validation-only model selection.

The loop is a handful of small steps::

    train(cfg, fold, out)                    resume or start, loop, select, finish
      run_epoch(ctx, epoch)                  one pass over the training videos
        forward_backward(ctx, batch, gen)    L = sum_s L_s on one padded batch, backward
        optimizer_step(ctx)                  every ``train.accumulate_steps`` batches
      validate(ctx, epoch)                   each stream + fusion on the validation videos
      log_step(ctx, row)                     metrics.csv (+ TensorBoard), rank 0 only
      save_last / save_best                  atomic checkpoints
    finish(ctx)                              fusion weights (+ post-processing) on validation

Randomness and exact resume: nothing depends on hidden RNG state carried across epochs. For epoch
``e`` the video order, the temporal offsets, the diffusion timesteps/noise/condition masks (an
explicit ``torch.Generator``) and dropout (the global torch RNG, seeded inside
``torch.random.fork_rng`` so the caller's RNG state is left untouched) are all derived from
``(train.seed, e)``; the initial weights from ``(train.seed, "init")`` the same way. A run
killed at any moment and resumed from its last checkpoint therefore replays exactly the
epochs an uninterrupted run would have run (bit-identical weights on CPU).

Multi-process training (``torchrun``, see :mod:`twostream_das.distributed`): the model is
wrapped in ``DistributedDataParallel`` and ``train.batch_size`` is the global batch, split evenly
over the ranks by a ``DistributedSampler``. Every sample draws its diffusion timestep, noise and
condition mask from a generator derived from ``(train.seed, epoch, its position in the epoch's
order)``, so N ranks take exactly the steps one process takes with the same global batch (up
to float summation order; dropout draws from each rank's own seeded RNG). Only rank 0
validates and writes (checkpoints, metrics.csv, selection); the others wait for it at the next
collective. Resume is the same as for one process: every rank loads ``last.pt``.
"""

from .loop import train
from .state import TrainResult

__all__ = ["TrainResult", "train"]
