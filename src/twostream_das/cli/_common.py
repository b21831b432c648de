"""Arguments shared by several commands."""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional

from ..config import FAST_SAMPLING, Views
from ..diffusion import SAMPLERS
from ..extraction import WEIGHTS_ENV, FeatureStream

WEIGHT_FLAGS: dict[FeatureStream, str] = {
    FeatureStream.I3D_RGB: "--i3d-rgb-weights",
    FeatureStream.I3D_FLOW: "--i3d-flow-weights",
    FeatureStream.CLIP_RGB: "--clip-weights",
}
"""The command-line option of each extractor stream's weights file."""


def add_weight_args(parser: argparse._ActionsContainer) -> None:
    """``--i3d-rgb-weights`` / ``--i3d-flow-weights`` / ``--clip-weights`` PATH."""
    for stream, flag in WEIGHT_FLAGS.items():
        parser.add_argument(flag, default=None, metavar="PATH",
                            help=f"weights file (default: ${WEIGHTS_ENV[stream]})")


def weight_options(
    args: argparse.Namespace,
) -> tuple[dict[FeatureStream, Optional[str]], dict[FeatureStream, str]]:
    """The weights file of each stream (flag, else environment variable) and how errors name
    it (``--i3d-rgb-weights (or $TWOSTREAM_DAS_I3D_RGB_WEIGHTS)``)."""
    weights = {
        stream: getattr(args, flag.removeprefix("--").replace("-", "_"))
        or os.environ.get(WEIGHTS_ENV[stream])
        for stream, flag in WEIGHT_FLAGS.items()
    }
    names = {s: f"{flag} (or ${WEIGHTS_ENV[s]})" for s, flag in WEIGHT_FLAGS.items()}
    return weights, names


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        required=True,
        metavar="FILE_OR_PRESET",
        help="a YAML file or a preset name: gtea, 50salads, breakfast, demo",
    )
    add_overrides(
        parser,
        "override config keys, e.g. --set dataset.root=/data/gtea train.epochs=100 "
        "(repeatable; unknown keys are errors)",
    )


def add_overrides(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE ...`` (repeatable) into ``args.overrides``, a list of strings."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def add_print_config(parser: argparse.ArgumentParser) -> None:
    """``--print-config``: print the merged config and exit (``--out`` is then not needed)."""
    parser.add_argument(
        "--print-config", action="store_true",
        help="print the merged config (the file or preset with every --set applied, all keys) "
        "as YAML and exit",
    )


def print_config(args: argparse.Namespace) -> bool:
    """With ``--print-config``: print the merged config and return True (the command exits).

    Raises:
        ConfigError: a bad config or override; ``--out`` missing without ``--print-config``.
    """
    from ..config import load_config, to_yaml
    from ..errors import ConfigError

    if args.print_config:
        print(to_yaml(load_config(args.config, args.overrides)), end="")
        return True
    if args.out is None:
        raise ConfigError(f"{args.command} needs --out DIR (the run folder), or --print-config")
    return False


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` on a command (default SUPPRESS: ``twostream-das --quiet CMD`` works too)."""
    parser.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS,
        help="no progress bars, warnings only",
    )


def add_rank_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads of this process (of each rank under ``torchrun``)."""
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch CPU threads (default: torch's, all cores; under torchrun the cores divided "
        "by the processes per machine unless OMP_NUM_THREADS > 1 is set)",
    )  # fmt: skip


def add_sampling(parser: argparse.ArgumentParser) -> None:
    """``--sampler NAME``, ``--steps N``, ``--samples K``, ``--views all|middle`` and ``--fast``:
    how inference samples (``eval.sampler``, ``eval.steps``, ``eval.samples``, ``eval.views``;
    :data:`~twostream_das.config.FAST_SAMPLING`), on any checkpoint. Given with ``--fast``, an
    explicit option wins over the fast setting's value for it."""
    fast = ", ".join(f"{k} {v}" for k, v in FAST_SAMPLING.items())
    parser.add_argument(
        "--sampler",
        choices=tuple(SAMPLERS),
        default=None,
        help="the sampler (default: the checkpoint's eval.sampler, ddim unless set); see "
        "docs/SAMPLERS.md",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="sampling steps (default: the checkpoint's eval.steps); fewer is faster, see "
        "docs/SAMPLERS.md",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="K",
        help="samples per video and stream, drawn in one batched pass and fused as their "
        "mean; K > 1 adds a per-frame uncertainty (default: eval.samples, 1)",
    )
    parser.add_argument(
        "--views",
        choices=tuple(v.value for v in Views),
        default=None,
        help="at dataset.sample_rate > 1, sample every temporal offset and average (all) or "
        "the middle offset alone (middle: sample_rate times fewer passes) (default: the "
        "checkpoint's eval.views, all unless set)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help=f"the measured fast setting ({fast}; docs/SAMPLERS.md); --sampler, --steps, "
        "--samples or --views given with it win",
    )


def sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`add_sampling`'s options were given as, by the keyword names the library
    takes (``sampler``, ``steps``, ``samples``, ``views``, ``fast``)."""
    return {k: getattr(args, k) for k in ("sampler", "steps", "samples", "views", "fast")}
