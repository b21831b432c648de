"""The exported folder and its manifest (``model.json``): what a host needs beside the graphs.

    DIR/model.json                    this manifest (below)
    DIR/<stream>.encoder.onnx         features (B, D, T) float32, mask (B, T) bool
                                      -> logits (B, C, T), cond (B, Dc, T)
    DIR/<stream>.decoder_context.onnx cond (B, Dc, T) -> context_0 .. context_{L-1} (B, 3F, T)
    DIR/<stream>.decoder.onnx         x (B, C, T) in [0, 1], t (B,) int64, mask (B, T) bool,
                                      context_0 .. context_{L-1} -> x0_logits (B, C, T)

B and T are dynamic in every graph. The decoder's context is the conditioning's share of every
block's query/key projection (:meth:`twostream_das.model.decoder.Decoder.prepare`): it depends on
the
video only, so a host computes it once per video and feeds it to the decoder at every step.

The manifest (JSON, ``format_version`` :data:`FORMAT_VERSION`) holds: ``format``,
``package_version``, ``opset``, ``exported_with`` (torch, onnx versions), ``checkpoint``
(file name, sha256, epoch), ``classes``, ``background``, ``streams`` (in order: ``name``,
``dim``, ``orientation``, ``source``, ``standardize`` (``mean``/``std`` lists, or null),
``context_outputs``, ``graphs`` (role -> ``file``, ``sha256``)), ``sampler`` (``name``:
``ddim``, ``dpmpp_2m`` or ``dpmpp_2m_sde``, ``eta``, ``num_inference_steps``,
``num_train_timesteps``, ``schedule``, ``alphas_cumprod``, ``timestep_spacing``: ``linear`` or
``quadratic``, ``timesteps``, ``signal_scale``), ``inference`` (``seed``, ``samples``,
``sample_rate``, ``views``: ``all`` or ``middle``, ``fast``: the sampling keys ``--fast`` sets),
``fusion`` (``weights``, ``rule``, ``input``, ``temperatures``, ``prob_floor``, ``sampling``:
``separate`` or ``joint``, fusion inside the sampler, where the config has it),
``postprocess`` (``kind``, ``window``), ``data`` (``fps``, ``length_tolerance``),
``graph_io`` (each role's input and output names). No torch here.

Folders written before ``timestep_spacing``, ``views`` and ``fast`` were recorded read as they
were exported: ``linear`` and ``all`` (the only values the export accepted then), and ``--fast``
is refused on them with a line saying to re-export; so the format version stayed 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import CheckpointError

FORMAT = "twostream-das-onnx"
FORMAT_VERSION = 1
"""Bumped when the folder's layout or the manifest's meaning changes incompatibly; a runtime
refuses a folder of another version (:func:`read_manifest`)."""

MANIFEST = "model.json"
ROLES = ("encoder", "decoder_context", "decoder")
GRAPH_IO: dict[str, dict[str, list[str]]] = {
    "encoder": {"inputs": ["features", "mask"], "outputs": ["logits", "cond"]},
    "decoder_context": {"inputs": ["cond"], "outputs": ["context_{i}"]},
    "decoder": {"inputs": ["x", "t", "mask", "context_{i}"], "outputs": ["x0_logits"]},
}
"""Input and output names of each graph (``context_{i}``: one per decoder block)."""


class BundleError(CheckpointError):
    """An exported folder is missing, altered, of another version, or does not fit the input
    (the CLI's one line and exit 2)."""


class ExportError(CheckpointError):
    """A checkpoint that cannot be exported faithfully (the reason is named)."""


def graph_file(stream: str, role: str) -> str:
    return f"{stream}.{role}.onnx"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class StreamEntry:
    """One stream of the manifest."""

    name: str
    dim: int
    orientation: str  # "DxT" | "TxD": how its files are stored
    source: str  # "folder" | "i3d_rgb" | "i3d_flow"
    mean: Optional[list[float]]  # standardisation (D,), or None
    std: Optional[list[float]]
    context_outputs: int  # decoder blocks L
    graphs: dict[str, Path]  # role -> file


@dataclass(frozen=True)
class Manifest:
    """``model.json`` read and checked (:func:`read_manifest`); ``raw`` keeps the whole dict."""

    folder: Path
    raw: dict[str, Any]
    streams: list[StreamEntry]

    @property
    def classes(self) -> list[str]:
        return list(self.raw["classes"])

    @property
    def stream_names(self) -> list[str]:
        return [s.name for s in self.streams]

    @property
    def sampler(self) -> dict[str, Any]:
        return self.raw["sampler"]

    @property
    def fusion(self) -> dict[str, Any]:
        return self.raw["fusion"]

    @property
    def postprocess(self) -> dict[str, Any]:
        return self.raw["postprocess"]

    @property
    def inference(self) -> dict[str, Any]:
        return self.raw["inference"]

    @property
    def data(self) -> dict[str, Any]:
        return self.raw["data"]


def read_manifest(folder: str | Path, verify_hashes: bool = True) -> Manifest:
    """Read ``folder/model.json`` and check it: format and version, every graph present and
    (with ``verify_hashes``) of the sha256 the manifest names.

    Raises:
        BundleError: naming the folder or file and what was expected.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        what = "does not exist" if not folder.exists() else f"has no {MANIFEST}"
        raise BundleError(
            f"exported model folder {folder} {what}; expected the folder "
            "'twostream-das export CHECKPOINT --out DIR' wrote"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"{path} cannot be read as JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BundleError(f"{path} is not a {FORMAT} manifest (format {raw.get('format')!r})"
                          if isinstance(raw, dict) else f"{path} is not a JSON object")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has format_version {version!r}; this runtime reads version "
            f"{FORMAT_VERSION}: re-export the checkpoint with this package version "
            f"(it was exported by twostream_das {raw.get('package_version')!r})"
        )
    try:
        streams = [_stream_entry(folder, s) for s in raw["streams"]]
        for key in ("classes", "sampler", "fusion", "postprocess", "inference", "data"):
            raw[key]  # noqa: B018  (present)
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(
            f"{path} lacks or mangles the entry {err}; re-export the checkpoint"
        ) from None
    for stream in streams:
        for role, file in stream.graphs.items():
            if not file.is_file():
                raise BundleError(
                    f"{folder}: graph {file.name} ({stream.name} {role}) is missing; expected the "
                    "files the export wrote"
                )
            if verify_hashes:
                want = raw_graph(raw, stream.name, role)["sha256"]
                got = sha256_file(file)
                if got != want:
                    raise BundleError(
                        f"{file} has sha256 {got[:16]}..., but {MANIFEST} says {want[:16]}...: "
                        "the graph was altered or replaced; re-export the checkpoint"
                    )
    return Manifest(folder, raw, streams)


def raw_graph(raw: Mapping[str, Any], stream: str, role: str) -> dict[str, Any]:
    entry = next(s for s in raw["streams"] if s["name"] == stream)
    return entry["graphs"][role]


def _stream_entry(folder: Path, entry: Mapping[str, Any]) -> StreamEntry:
    std = entry.get("standardize")
    return StreamEntry(
        name=str(entry["name"]),
        dim=int(entry["dim"]),
        orientation=str(entry["orientation"]),
        source=str(entry["source"]),
        mean=None if std is None else [float(v) for v in std["mean"]],
        std=None if std is None else [float(v) for v in std["std"]],
        context_outputs=int(entry["context_outputs"]),
        graphs={role: folder / str(entry["graphs"][role]["file"]) for role in ROLES},
    )
