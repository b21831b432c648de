"""Samplers, steps, samples and views against accuracy, speed and uncertainty, on the fusion
bench's trained checkpoints (``bench/fusion_quality.py``). Prints JSON; ``report`` also writes
the Markdown table and a plot.

Every row uses the same trained networks (per seed, the snapshot the fusion bench's validation
chose for the default fusion), the same fusion weights and the same post-processing: chosen
once on the validation videos with the presets' sampler (DDIM, 25 steps, one sample) by the
package's own ``finish``. Only the sampling changes from row to row, and each row is scored by
the package's own ``evaluate`` (``evaluate_run``, nothing written) on the test videos: accuracy,
Edit, F1@{10,25,50} for each stream and fused, seconds per video (the whole of ``evaluate``'s
prediction: encoders, each stream's own samples and the joint samples, fusion and
post-processing), and the uncertainty scores (AUROC of finding wrong frames, ECE).

Views need a sample rate above 1, and the bench's videos are at 1/8 of 50Salads' frame rate
with ``sample_rate = 1``. ``prepare`` therefore also writes the test videos at the full rate:
the real full-rate labels, and features linearly interpolated in time between the bench's own
frames (offset 0 of the 8 views is exactly the bench's video; the others lie between its
frames, as consecutive frames of real clip features do). Evaluated with ``sample_rate = 8``,
``views: all`` samples every offset and ``middle`` offset 4 only. The cost side of the views
rows is exact; their accuracy is only as realistic as that interpolation.

Stages (resumable, one CPU thread; run heavy stages one at a time on a quiet machine)::

    python3 bench/sampler_table.py prepare --work /tmp/fq --seeds 0 1 2
    python3 bench/sampler_table.py run     --work /tmp/fq --seeds 0 1 2 --quadratic --budget 540
    python3 bench/sampler_table.py time    --work /tmp/fq --seeds 0 --repeats 3
    python3 bench/sampler_table.py report  --work /tmp/fq --seeds 0 1 2 \
        --markdown /tmp/fq/samplers.md --plot docs/assets/samplers.png
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fusion_quality as fq  # noqa: E402  (the bench whose checkpoints these are)

from twostream_das.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from twostream_das.diffusion import SAMPLERS  # noqa: E402
from twostream_das.metrics import METRIC_KEYS  # noqa: E402
from twostream_das.model.multi_stream import MultiStreamModel  # noqa: E402
from twostream_das.runs import RunDir  # noqa: E402
from twostream_das.workflows.evaluation import evaluate_run  # noqa: E402
from twostream_das.workflows.training.state import build_context, snapshot  # noqa: E402
from twostream_das.workflows.training.validation import finish  # noqa: E402

STEPS = (2, 4, 6, 8, 12, 25)
QUADRATIC_STEPS = (2, 4, 6, 8)
FULL_RATE_ROWS = (  # (sampler, steps, K, spacing) sampled with views all and middle
    ("ddim", 25, 1, "linear"), ("ddim", 2, 1, "linear"), ("ddim", 2, 4, "linear"),
    ("ddim", 4, 1, "linear"), ("ddim", 4, 4, "linear"), ("ddim", 6, 1, "linear"),
)
SAMPLES = (1, 4)
VIEWS = ("all", "middle")
FULL_RATE = 8  # 50Salads: the bench's videos are every 8th frame
REFERENCE = ("ddim", 25, 1)  # the presets' sampling: what every row is compared with


@dataclass(frozen=True)
class Setting:
    sampler: str
    steps: int
    samples: int
    views: Optional[str]  # None: the bench's own videos (sample rate 1, one view)
    spacing: str = "linear"  # eval.timestep_spacing

    @property
    def key(self) -> str:
        key = f"{self.sampler}/{self.steps}/{self.samples}/{self.views or 'rate1'}"
        return key if self.spacing == "linear" else f"{key}/{self.spacing}"


def settings(samplers: list[str], full_rate: bool, quadratic: bool) -> list[Setting]:
    """Every row: the rate-1 rows first (cheap), then the full-rate ones."""
    out = [Setting(s, n, k, None) for s in samplers for n in STEPS for k in SAMPLES]
    if quadratic:  # where the few steps lie: DPM-Solver's time-quadratic grid
        out += [Setting(s, n, k, None, "quadratic") for s in samplers for n in QUADRATIC_STEPS
                for k in SAMPLES]  # fmt: skip
    if full_rate:  # eight views cost eight times the rate-1 rows: the candidates only
        out += [Setting(s, n, k, v, spacing) for v in VIEWS
                for s, n, k, spacing in FULL_RATE_ROWS]  # fmt: skip
    return out


def table_dir(args: argparse.Namespace, seed: int) -> Path:
    return fq.seed_dir(args, seed) / "table"


def chosen_epoch(args: argparse.Namespace, seed: int) -> int:
    """The epoch the fusion bench's validation chose for the default fusion (joint, sum)."""
    report = json.loads((fq.seed_dir(args, seed) / "report.json").read_text())
    return int(report["chosen_epoch"]["joint/sum"])


# ----------------------------------------------------------------------------- prepare


def stage_prepare(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(1)
    out: dict[str, object] = {}
    for seed in args.seeds:
        out[str(seed)] = prepare_seed(args, seed)
    return out


def prepare_seed(args: argparse.Namespace, seed: int) -> dict[str, object]:
    """``table/run``: the chosen snapshot as ``best.pt`` with its validation selection, and
    ``table/full``: the same checkpoint over the full-rate test videos."""
    folder, epoch = table_dir(args, seed), chosen_epoch(args, seed)
    run = RunDir(folder / "run")
    if not run.best.is_file() or load_checkpoint(run.best).selection is None:
        snap = load_checkpoint(fq.seed_dir(args, seed) / "snapshots" / f"epoch{epoch}.pt")
        cfg = snap.to_config()
        if run.root.exists():
            shutil.rmtree(run.root)
        ctx = build_context(cfg, fq.FOLD, run, None, quiet=True)
        trained = json.loads((fq.seed_dir(args, seed) / "run" / "split.json").read_text())
        mine = json.loads(run.split_json.read_text())
        assert all(mine[p] == trained[p] for p in ("train", "val", "test")), "split differs"
        ctx.model.load_state_dict(snap.weights)
        ctx.epoch = snap.epoch
        save_checkpoint(run.best, snapshot(ctx, with_optimizer=False))
        finish(ctx)
    best = load_checkpoint(run.best)
    full = prepare_full_rate(args, best)
    return {"epoch": epoch, "selection": best.selection.to_dict() if best.selection else None,
            "full_rate_data": str(full)}


def prepare_full_rate(args: argparse.Namespace, best: Any) -> Path:
    """The test videos at the full rate (``<dataset>/data_full``) and ``table/full`` runs."""
    cfg = best.to_config()
    low = Path(cfg.dataset.root)
    high = low.parent / "data_full"
    if not (high / "done.json").is_file():
        write_full_rate(low, high)
    return high


def write_full_rate(low: Path, high: Path) -> None:
    """Full-rate labels (the shared archive's) and features interpolated between the bench's
    frames, for the test videos of the bench's fold."""
    source = fq.SOURCES["50salads"]
    labels = fq.read_ground_truth(fq.SHARED / source.folder)
    test = fq._bundle(low, "test")
    for sub in ("groundTruth", "splits", *(f"features_{s}" for s in fq.STREAMS)):
        (high / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(low / "mapping.txt", high / "mapping.txt")
    for part in ("train", "test"):  # the fold's names; only the test videos have features
        shutil.copy(low / "splits" / f"{part}.split{fq.FOLD}.bundle",
                    high / "splits" / f"{part}.split{fq.FOLD}.bundle")
    for video in test:
        frames = labels[video]
        (high / "groundTruth" / f"{video}.txt").write_text("".join(f"{c}\n" for c in frames))
        for s in fq.STREAMS:
            feats = np.load(low / f"features_{s}" / f"{video}.npy")  # (D, T_low)
            np.save(high / f"features_{s}" / f"{video}.npy",
                    interpolate(feats, len(frames), FULL_RATE))
    (high / "done.json").write_text(json.dumps({"from": str(low), "rate": FULL_RATE}) + "\n")


def interpolate(feats: np.ndarray, frames: int, rate: int) -> np.ndarray:
    """(D, T_low) -> (D, frames): frame m at position m / rate of the low-rate frames, linearly
    between its neighbours (the last low-rate frame held beyond the end)."""
    pos = np.arange(frames, dtype=np.float64) / rate
    left = np.minimum(np.floor(pos).astype(np.int64), feats.shape[1] - 1)
    right = np.minimum(left + 1, feats.shape[1] - 1)
    frac = (pos - left).clip(0.0, 1.0)[None]
    return ((1 - frac) * feats[:, left] + frac * feats[:, right]).astype(np.float32)


# ----------------------------------------------------------------------------- run


def stage_run(args: argparse.Namespace) -> dict[str, object]:
    """Evaluate every (seed, setting) not yet in ``table/rows.jsonl`` until ``--budget``."""
    torch.set_num_threads(1)
    samplers = args.samplers or list(SAMPLERS)
    start, longest, done = time.perf_counter(), 0.0, 0
    for setting in settings(samplers, not args.no_full_rate, args.quadratic):
        for seed in args.seeds:
            rows = read_rows(args, seed)
            if setting.key in rows:
                continue
            if time.perf_counter() - start + 1.5 * longest > args.budget:
                return {"done": done, "finished": False}
            tick = time.perf_counter()
            result = evaluate_setting(args, seed, setting)
            longest = max(longest, time.perf_counter() - tick)
            append_row(args, seed, setting, result)
            done += 1
            print(f"seed {seed} {setting.key}: fused acc {result['fused']['acc']:.1f} "
                  f"{result['seconds_per_video']:.3f} s/video", file=sys.stderr, flush=True)
    return {"done": done, "finished": True}


def evaluate_setting(args: argparse.Namespace, seed: int, setting: Setting) -> dict[str, Any]:
    """``evaluate_run`` on a copy of ``best.pt`` whose config holds the setting (in a run
    folder of its own: ``table/eval``, or ``table/full`` over the full-rate videos)."""
    folder = table_dir(args, seed)
    best = load_checkpoint(folder / "run" / "checkpoints" / "best.pt")
    config = json.loads(json.dumps(best.config))  # a deep copy of plain data
    config["eval"].update(sampler=setting.sampler, steps=setting.steps, samples=setting.samples,
                          timestep_spacing=setting.spacing)
    config["model"]["diffusion"].pop("num_inference_steps", None)
    run = eval_run(folder, "eval")
    if setting.views is not None:
        config["eval"]["views"] = setting.views
        data = Path(config["dataset"]["root"]).parent / "data_full"
        config["dataset"].update(root=str(data), sample_rate=FULL_RATE,
                                 fps=config["dataset"]["fps"] * FULL_RATE)
        run = eval_run(folder, "full")
    best.config = config
    save_checkpoint(run.best, best)
    try:
        return evaluate_run(run.root, quiet=True, write=False, threads=1)
    finally:
        run.best.unlink(missing_ok=True)


def eval_run(folder: Path, name: str) -> RunDir:
    """``table/<name>``: the trained run's files, for one setting's checkpoint at a time."""
    run = RunDir(folder / name)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    for file in ("run.json", "split.json"):
        shutil.copy(folder / "run" / file, run.root / file)
    return run


def read_rows(args: argparse.Namespace, seed: int) -> dict[str, dict[str, Any]]:
    path = table_dir(args, seed) / "rows.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["setting"]: r for r in rows}


def append_row(args: argparse.Namespace, seed: int, setting: Setting, result: dict[str, Any]
               ) -> None:
    streams = [s for s in result["fusion_weights"]]
    row = {
        "setting": setting.key, "seed": seed, "sampler": setting.sampler,
        "steps": setting.steps, "samples": setting.samples, "views": setting.views,
        "spacing": setting.spacing,
        "seconds_per_video": result["seconds_per_video"],
        "uncertainty": result["uncertainty"],
        **{s: result[s] for s in (*streams, "fused")},
    }
    with (table_dir(args, seed) / "rows.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")


TIMED = (  # (sampler, steps, K, views, spacing): the speed-ups the docs quote, one run
    ("ddim", 25, 1, None, "linear"), ("ddim", 2, 1, None, "linear"),
    ("ddim", 2, 4, None, "linear"), ("ddim", 4, 1, None, "linear"),
    ("ddim", 25, 1, "all", "linear"), ("ddim", 25, 1, "middle", "linear"),
    ("ddim", 2, 4, "middle", "linear"), ("ddim", 2, 1, "middle", "linear"),
)


def stage_time(args: argparse.Namespace) -> dict[str, object]:
    """Seconds per video of :data:`TIMED`, interleaved (round-robin, ``--repeats`` rounds, the
    median), on seed ``--seeds[0]``'s checkpoint; and each against DDIM-25 on the same videos."""
    torch.set_num_threads(1)
    chosen = [Setting(s, n, k, v, sp) for s, n, k, v, sp in TIMED]
    times: dict[str, list[float]] = {c.key: [] for c in chosen}
    for _ in range(args.repeats):
        for setting in chosen:
            result = evaluate_setting(args, args.seeds[0], setting)
            times[setting.key].append(result["seconds_per_video"])
    median = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "seed": args.seeds[0], "repeats": args.repeats, "threads": 1,
        "seconds_per_video": {k: round(v, 4) for k, v in median.items()},
        "speedup_vs_ddim25_rate1": {k: round(median["ddim/25/1/rate1"] / v, 2)
                                    for k, v in median.items() if k.endswith("rate1")},
        "speedup_vs_ddim25_all_views": {k: round(median["ddim/25/1/all"] / v, 2)
                                        for k, v in median.items() if not k.endswith("rate1")},
    }


# ----------------------------------------------------------------------------- report

COLUMNS = ("acc", "edit", "f1@50")


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = float(np.mean(values))
    return mean, float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def work_per_video(args: argparse.Namespace, seed: int) -> dict[str, float]:
    """GFLOP of one stream's encoder and of one decoder pass at the test videos' mean length
    (``torch.utils.flop_counter``), and the speed-up ceiling of n steps against 25: the
    encoders run once per sampling run whatever the steps, so ``(E + 25 D) / (E + n D)``."""
    from torch.utils.flop_counter import FlopCounterMode

    folder = table_dir(args, seed)
    best = load_checkpoint(folder / "run" / "checkpoints" / "best.pt")
    cfg = best.to_config()
    model = MultiStreamModel.from_config(cfg, dict(best.stream_dims), len(best.label_names))
    model.load_state_dict(best.weights)
    model.eval()
    test = fq._bundle(Path(cfg.dataset.root), "test")
    frames = int(np.mean([len((Path(cfg.dataset.root) / "groundTruth" / f"{v}.txt")
                               .read_text().split()) for v in test]))
    mask = torch.ones(1, frames, dtype=torch.bool)
    enc = dec = 0.0
    with torch.no_grad():
        for name, stream in model.streams.items():
            x = torch.randn(1, best.stream_dims[name], frames)
            with FlopCounterMode(display=False) as count:
                cond = stream.encoder(x, mask).cond
            enc += count.get_total_flops() / 1e9
            x_t = torch.rand(1, len(best.label_names), frames)
            with FlopCounterMode(display=False) as count:
                stream.decoder(x_t, torch.tensor([500]), cond, mask)
            dec += count.get_total_flops() / 1e9
    return {"frames": frames, "encoders_gflop": round(enc, 3),
            "decoder_step_gflop": round(dec, 3),
            **{f"ceiling_{n}_vs_25": round((enc + 25 * dec) / (enc + n * dec), 2)
               for n in STEPS}}


def stage_report(args: argparse.Namespace) -> dict[str, object]:
    per_seed = {seed: read_rows(args, seed) for seed in args.seeds}
    keys = [k for k in per_seed[args.seeds[0]] if all(k in r for r in per_seed.values())]
    summary: dict[str, dict[str, Any]] = {}
    for key in keys:
        rows = [per_seed[s][key] for s in args.seeds]
        first = rows[0]
        entry: dict[str, Any] = {n: first[n] for n in ("sampler", "steps", "samples", "views")}
        entry["spacing"] = first.get("spacing", "linear")
        for part in ("rgb", "flow", "fused"):
            entry[part] = {m: mean_std([r[part][m] for r in rows]) for m in METRIC_KEYS}
        entry["seconds_per_video"] = mean_std([r["seconds_per_video"] for r in rows])
        unc = [r["uncertainty"] for r in rows]
        for name in ("auroc_max_prob", "auroc_mutual_information", "ece",
                     "auroc_single_sample_max_prob", "ece_single_sample"):
            values = [u.get(name) for u in unc]
            if all(v is not None and not math.isnan(v) for v in values):
                entry[name] = mean_std([float(v) for v in values])
        summary[key] = entry
    work = work_per_video(args, args.seeds[0])
    if args.markdown:
        Path(args.markdown).write_text(markdown(summary, work))
    if args.plot:
        plot(summary, work, Path(args.plot))
    return {"seeds": args.seeds, "work": work, "rows": summary, "goals": goals(summary)}


def goals(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per sampler and K, the fewest steps whose fused acc, Edit and F1@50 are within 0.5 of
    DDIM-25 with one sample (or better), with that row's uncertainty AUROC beside the
    reference's (max probability; sample 0's for K = 1)."""
    ref = summary.get("ddim/25/1/rate1")
    if ref is None:
        return {}
    out: dict[str, Any] = {}
    for key, e in summary.items():
        if e["views"] is not None:
            continue
        ok = all(e["fused"][m][0] >= ref["fused"][m][0] - 0.5 for m in COLUMNS)
        name = f"{label(e)}, K={e['samples']}"
        if ok and (name not in out or e["steps"] < out[name]["steps"]):
            out[name] = {"steps": e["steps"], "key": key, "auroc": auroc_of(e)}
    return {"reference_auroc": auroc_of(ref), "matches_ddim25_within_0.5": out}


def uncertainty_of(e: dict[str, Any], kind: str) -> Optional[tuple[float, float]]:
    """A row's ``auroc`` (max probability) or ``ece`` (mean, std): of the K samples' mean for
    K > 1, of sample 0 for K = 1; None where the summary lacks it."""
    names = {"auroc": ("auroc_max_prob", "auroc_single_sample_max_prob"),
             "ece": ("ece", "ece_single_sample")}[kind]
    return e.get(names[0] if e["samples"] > 1 else names[1])


def auroc_of(e: dict[str, Any]) -> Optional[float]:
    pair = uncertainty_of(e, "auroc")
    return None if pair is None else round(pair[0], 4)


def label(e: dict[str, Any]) -> str:
    """The sampler and, where not DiffAct's linear grid, its timestep spacing."""
    spacing = e.get("spacing", "linear")
    return e["sampler"] if spacing == "linear" else f"{e['sampler']} ({spacing})"


def _fmt(pair: tuple[float, float], digits: int = 1) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def markdown(summary: dict[str, dict[str, Any]], work: dict[str, float]) -> str:
    """Two tables: the bench's own videos (sample rate 1), then the full-rate views rows."""
    rate1 = [e for e in summary.values() if e["views"] is None]
    views = [e for e in summary.values() if e["views"] is not None]
    return (_table(sorted(rate1, key=_order), work) + "\n"
            + _table(sorted(views, key=_order), work))


def gflop(e: dict[str, Any], work: dict[str, float]) -> float:
    """The arithmetic of one video as ``evaluate`` runs it: the streams sampled alone and then
    jointly, each run the encoders once and n steps x K samples of the decoders, per view."""
    views = FULL_RATE if e["views"] == "all" else 1
    per_run = work["encoders_gflop"] + e["steps"] * e["samples"] * work["decoder_step_gflop"]
    return 2 * views * per_run


def _order(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["views"] or "", e.get("spacing", "linear"), e["sampler"], e["steps"], e["samples"])


def _table(entries: list[dict[str, Any]], work: dict[str, float]) -> str:
    head = ("| sampler | steps | K | views | fused acc | fused Edit | fused F1@10 | F1@25 | "
            "F1@50 | RGB acc / F1@50 | FLOW acc / F1@50 | GFLOP / video | AUROC | ECE |")
    lines = [head, "|" + "---|" * 14]
    for e in entries:
        f = e["fused"]
        auroc, ece = uncertainty_of(e, "auroc"), uncertainty_of(e, "ece")
        lines.append(
            f"| {label(e)} | {e['steps']} | {e['samples']} | {e['views'] or '-'} | "
            f"{_fmt(f['acc'])} | {_fmt(f['edit'])} | {_fmt(f['f1@10'])} | {_fmt(f['f1@25'])} | "
            f"{_fmt(f['f1@50'])} | {e['rgb']['acc'][0]:.1f} / {e['rgb']['f1@50'][0]:.1f} | "
            f"{e['flow']['acc'][0]:.1f} / {e['flow']['f1@50'][0]:.1f} | "
            f"{gflop(e, work):.1f} | "
            f"{'-' if auroc is None else _fmt(auroc, 3)} | {'-' if ece is None else _fmt(ece, 3)} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict[str, Any]], work: dict[str, float], path: Path) -> None:
    """Fused accuracy against the arithmetic per video (:func:`gflop`; the seconds of a few
    settings are measured by ``time``), one line per sampler and K, sample rate 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    for name in sorted({label(e) for e in summary.values()}):
        for count, style in ((1, "-o"), (4, "--s")):
            rows = sorted((e for e in summary.values() if label(e) == name
                           and e["samples"] == count and e["views"] is None),
                          key=lambda e: e["steps"])  # fmt: skip
            if not rows:
                continue
            xs = [gflop(e, work) for e in rows]
            ys = [e["fused"]["acc"][0] for e in rows]
            ax.plot(xs, ys, style, label=f"{name}, K={count}", markersize=4)
            for e, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(str(e["steps"]), (x, y), textcoords="offset points",
                            xytext=(3, 3), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("GFLOP per video (evaluate: streams alone and joint; log scale)")
    ax.set_ylabel("fused accuracy (%), mean of 3 seeds")
    ax.set_title("Steps (labels) against accuracy and work")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("prepare", "run", "time", "report"))
    parser.add_argument("--work", required=True)
    parser.add_argument("--dataset", default="50salads", choices=sorted(fq.SOURCES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=None, help="default: every registered")
    parser.add_argument("--no-full-rate", action="store_true", help="skip the views rows")
    parser.add_argument("--quadratic", action="store_true",
                        help="also the time-quadratic grid (eval.timestep_spacing) at few steps")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds per call (run)")
    parser.add_argument("--repeats", type=int, default=3, help="time: rounds")
    parser.add_argument("--markdown", default=None, help="report: write the table here")
    parser.add_argument("--plot", default=None, help="report: write the plot here (PNG)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stages = {"prepare": stage_prepare, "run": stage_run, "time": stage_time,
              "report": stage_report}
    stage = stages[args.stage]
    print(json.dumps(stage(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
