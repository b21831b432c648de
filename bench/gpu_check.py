"""Two-stream training step (fp32, bf16 autocast) and inference on a device, against the CPU.

    python bench/gpu_check.py [--device cuda] [--frames 1000] [--repeats 5]
                              [--sampling-frames 1500] [--folder-videos 20]
                              [--folder-frames 800:2000]

Run by ``bench/gpu_check.sh`` (which first checks that a CUDA device is there). The GTEA preset's
networks (768-d RGB, 1024-d FLOW, 11 classes, 25 DDIM steps), dropout off so both devices
compute the same function, a batch of 2 random videos of ``--frames`` frames, and the same
per-video generators (on the CPU) on both devices, so both draw the same timesteps, noise and
masks. Compared with the same model on the CPU in fp32:

- training loss and the gradient vector, fp32 (``TOLERANCES``) and bf16 autocast (looser);
- inference probabilities (max abs difference, and for fp32 the share of frames with the same
  argmax), fp32 and bf16 autocast. TF32 is off, so fp32 is fp32 on both devices.

Then the two sampling throughput measurements on the device (reported, not judged):
``sampling`` (``bench_sampling.measure``: K = 4 samples in one pass and in passes of one against
one sample, GTEA preset, ``--sampling-frames`` frames) and ``predict_folder``
(``bench_predict_folder.measure``: 4 views per batch and the default against one video at a
time over ``--folder-videos`` videos).

Prints one JSON object, also when a comparison fails or a step raises (its ``error``); exit
code 0 when every comparison is within tolerance, 1 otherwise. ``--device cpu`` runs the same
checks CPU against CPU (the script's own test).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_predict_folder  # noqa: E402
import bench_sampling  # noqa: E402
from _bench import PRESETS, build_model, machine  # noqa: E402

from twostream_das.config import load_config  # noqa: E402
from twostream_das.data.collate import Batch  # noqa: E402
from twostream_das.diffusion import make_sampler  # noqa: E402
from twostream_das.model.multi_stream import MultiStreamModel  # noqa: E402
from twostream_das.prediction.stacked import choose_strategy  # noqa: E402

PRESET = "gtea"
BATCH = 2
NO_DROPOUT = ["model.encoder.dropout=0", "model.encoder.channel_dropout=0",
              "model.encoder.frame_dropout=0", "model.decoder.dropout=0"]
TOLERANCES = {  # relative to the CPU fp32 value unless said otherwise
    "train_fp32_loss_rel": 1e-4,
    "train_fp32_grad_rel": 1e-3,  # ||g_dev - g_cpu|| / ||g_cpu||
    "train_bf16_loss_rel": 3e-2,
    "train_bf16_grad_rel": 1.5e-1,
    "infer_fp32_prob_abs": 2e-3,  # max |p_dev - p_cpu| over streams, classes, real frames
    "infer_fp32_argmax_agree": 0.99,  # share of real frames with the same argmax (lower bound)
    "infer_bf16_prob_abs": 5e-2,  # bf16's argmax agreement is reported, not judged: random
}  # weights give near-uniform probabilities, whose argmax any rounding flips
SAMPLER = make_sampler(load_config(PRESET, NO_DROPOUT))


def build(frames: int) -> tuple[MultiStreamModel, Batch]:
    cfg = load_config(PRESET, NO_DROPOUT)
    dims, classes = PRESETS[PRESET]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MultiStreamModel.from_config(cfg, dims, classes)
    gen = torch.Generator().manual_seed(0)
    features = {s: torch.randn(BATCH, d, frames, generator=gen) for s, d in dims.items()}
    # piecewise-constant labels: 10 segments per video
    labels = torch.randint(0, classes, (BATCH, 10), generator=gen).repeat_interleave(
        -(-frames // 10), dim=1)[:, :frames]
    boundary = torch.zeros(BATCH, frames)
    boundary[:, 1:] = (labels[:, 1:] != labels[:, :-1]).float()
    mask = torch.ones(BATCH, frames, dtype=torch.bool)
    mask[1, frames - frames // 5 :] = False  # the second video is shorter: padding is exercised
    for f in features.values():
        f[~mask[:, None, :].expand_as(f)] = 0.0  # zero at padding, as collate writes it
    labels[~mask] = -100  # IGNORE_INDEX
    boundary[~mask] = 0.0
    batch = Batch([f"v{b}" for b in range(BATCH)], features, labels, boundary, mask, [0] * BATCH)
    return model, batch


def generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(100 + b) for b in range(BATCH)]  # CPU: same draws


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def precision(device: torch.device, bf16: bool) -> Iterator[None]:
    if bf16:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def loss_and_grad(model: MultiStreamModel, batch: Batch, device: torch.device,
                  bf16: bool) -> tuple[float, torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    with precision(device, bf16):
        loss = model.loss(batch, None, generators()).total
    loss.backward()
    grad = torch.cat([p.grad.detach().float().flatten().cpu() for p in model.parameters()
                      if p.grad is not None])
    return float(loss.detach().float().cpu()), grad


def probabilities(model: MultiStreamModel, batch: Batch, device: torch.device,
                  bf16: bool) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.inference_mode(), precision(device, bf16):
        gens = {name: generators() for name in model.stream_names}  # one per (stream, video)
        probs = model.predict_proba(batch.features, batch.mask, gens, SAMPLER,
                                    choose_strategy(model))
    return {s: p.float().cpu() for s, p in probs.items()}


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> dict[str, float]:
    fn()  # warm-up (kernel selection, allocator)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def compare(report: dict, name: str, value: float, higher_is_ok: bool = False) -> None:
    limit = TOLERANCES[name]
    ok = value >= limit if higher_is_ok else value <= limit
    report["comparisons"][name] = {"value": value, "tolerance": limit,
                                   "rule": ">=" if higher_is_ok else "<=", "ok": bool(ok)}


def step(report: dict, name: str, fn: Callable[[], None]) -> None:
    """Run one part; an exception is recorded in the report (and fails the check)."""
    try:
        fn()
    except Exception as err:  # every part reports, whatever happens in another
        report["errors"][name] = f"{type(err).__name__}: {err}"
        report["tracebacks"][name] = traceback.format_exc(limit=6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sampling-frames", type=int, default=1500,
                        help="time K = 4 samples against K = 1 at this T (GTEA preset)")
    parser.add_argument("--folder-videos", type=int, default=20,
                        help="time folder throughput over this many videos")
    parser.add_argument("--folder-frames", type=bench_predict_folder.frame_range,
                        default=(800, 2000), metavar="LOW:HIGH")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    # fp32 means fp32: no TF32 in cuDNN convolutions (on by default) or matmuls
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    report: dict = {"benchmark": "gpu_check", "preset": PRESET, "batch": BATCH,
                    "frames": args.frames, "device": str(device), "tf32": False,
                    "tolerances": TOLERANCES,
                    "machine": machine(torch.get_num_threads()), "comparisons": {},
                    "timings": {}, "errors": {}, "tracebacks": {}}
    if device.type == "cuda":
        report["gpu"] = {"name": torch.cuda.get_device_name(device),
                         "capability": list(torch.cuda.get_device_capability(device)),
                         "bf16_supported": torch.cuda.is_bf16_supported(),
                         "torch_cuda": torch.version.cuda}
    cpu_model, cpu_batch = build(args.frames)
    model = copy.deepcopy(cpu_model).to(device)
    batch = cpu_batch.to(device)
    cpu = torch.device("cpu")
    ref: dict = {}

    def reference() -> None:
        ref["loss"], ref["grad"] = loss_and_grad(cpu_model, cpu_batch, cpu, False)
        ref["probs"] = probabilities(cpu_model, cpu_batch, cpu, False)
        report["cpu_loss"] = ref["loss"]

    step(report, "cpu_reference", reference)

    for bf16, tag in ((False, "fp32"), (True, "bf16")):
        def train_check(bf16: bool = bf16, tag: str = tag) -> None:
            loss, grad = loss_and_grad(model, batch, device, bf16)
            report[f"{tag}_loss"] = loss
            compare(report, f"train_{tag}_loss_rel", abs(loss - ref["loss"]) / abs(ref["loss"]))
            rel = float((grad - ref["grad"]).norm() / ref["grad"].norm())
            compare(report, f"train_{tag}_grad_rel", rel)
            work = copy.deepcopy(model)  # timed steps change the weights: on a copy
            optimizer = torch.optim.Adam(work.parameters(), lr=1e-4)

            def one_step() -> None:
                with precision(device, bf16):
                    work.loss(batch, None, generators()).total.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            work.train()
            report["timings"][f"train_step_{tag}"] = timed(one_step, device, args.repeats)

        def infer_check(bf16: bool = bf16, tag: str = tag) -> None:
            probs = probabilities(model, batch, device, bf16)
            mask = cpu_batch.mask[:, None, :]
            diffs = [float(((probs[s] - ref["probs"][s]).abs() * mask).max()) for s in probs]
            agree = [
                float((probs[s].argmax(1) == ref["probs"][s].argmax(1))[cpu_batch.mask]
                      .float().mean())
                for s in probs
            ]
            compare(report, f"infer_{tag}_prob_abs", max(diffs))
            if bf16:
                report["infer_bf16_argmax_agree"] = min(agree)
            else:
                compare(report, "infer_fp32_argmax_agree", min(agree), higher_is_ok=True)
            report["timings"][f"inference_{tag}"] = timed(
                lambda: probabilities(model, batch, device, bf16), device, args.repeats)

        step(report, f"train_{tag}", train_check)
        step(report, f"inference_{tag}", infer_check)

    report["timings"]["cpu_inference_fp32"] = {}
    step(report, "cpu_timing", lambda: report["timings"].__setitem__(
        "cpu_inference_fp32", timed(lambda: probabilities(cpu_model, cpu_batch, cpu, False),
                                    cpu, 1)))
    def sampling() -> None:  # K samples in one pass against one sample, on the device
        report["sampling"] = bench_sampling.measure(
            PRESET, args.sampling_frames, [1, 4], 25, args.repeats, device
        )

    def folder() -> None:  # several views per batch against one at a time, on the device
        model, cfg = build_model(PRESET)
        videos = bench_predict_folder.make_videos(args.folder_videos, *args.folder_frames)
        report["predict_folder"] = bench_predict_folder.measure(model, cfg, videos, 4, 2, device)

    step(report, "sampling", sampling)
    step(report, "predict_folder", folder)
    if device.type == "cuda":
        report["gpu"]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    ok = not report["errors"] and all(c["ok"] for c in report["comparisons"].values())
    report["status"] = "ok" if ok else "failed"
    if not report["tracebacks"]:
        del report["tracebacks"]
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
