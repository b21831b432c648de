"""``twostream-das export``: the folder, its manifest and the refusals."""

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from twostream_das.config import TimestepSpacing
from twostream_das.deploy import export as export_module
from twostream_das.deploy.bundle import BundleError, ExportError, read_manifest, sha256_file
from twostream_das.diffusion import make_sampler
from twostream_das.prediction.inference import load_model, with_sampling

pytest.importorskip("onnxruntime")


def test_the_manifest_describes_what_the_host_needs(onnx_export):
    checkpoint, folder = onnx_export
    raw = json.loads((folder / "model.json").read_text())
    loaded = load_model(checkpoint, torch.device("cpu"))
    stream = loaded.model.streams["rgb"]
    assert raw["format_version"] == 1 and raw["package_version"] and raw["opset"] >= 17
    assert raw["classes"] == loaded.label_names
    assert [s["name"] for s in raw["streams"]] == ["rgb", "flow"]
    assert [s["dim"] for s in raw["streams"]] == [7, 5]
    sampler = raw["sampler"]
    assert sampler["timesteps"] == list(make_sampler(loaded.config).timesteps)
    assert np.array_equal(sampler["alphas_cumprod"],
                          stream.diffusion.schedule.alphas_cumprod.numpy())  # exactly
    assert raw["fusion"]["weights"] == {"rgb": 0.6, "flow": 0.4}
    assert raw["fusion"]["input"] == "trajectory"
    assert raw["postprocess"] == {"kind": "median", "window": 5}
    assert raw["inference"] == {
        "seed": 0, "samples": 2, "sample_rate": 2, "views": "all", "precision": "fp32",
        "fast": {"sampler": "ddim", "steps": 2, "samples": 4, "views": "middle"},
    }  # fmt: skip
    assert sampler["name"] == "ddim" and sampler["timestep_spacing"] == "linear"
    mean, std = loaded.model.standardizer.stats("flow")
    assert np.array_equal(np.float32(raw["streams"][1]["standardize"]["mean"]), mean.numpy())
    assert np.array_equal(np.float32(raw["streams"][1]["standardize"]["std"]), std.numpy())
    assert raw["checkpoint"]["sha256"] == sha256_file(checkpoint)
    manifest = read_manifest(folder)  # every hash checked
    assert len(manifest.streams[0].graphs) == 3


def test_the_graphs_pass_the_checker_with_dynamic_batch_and_frames(onnx_export):
    _, folder = onnx_export
    for path in sorted(folder.glob("*.onnx")):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        for value in model.graph.input:
            dims = value.type.tensor_type.shape.dim
            assert not dims[0].HasField("dim_value"), (path.name, value.name)  # batch: dynamic
            if len(dims) > 1 and value.name != "t":
                assert not dims[-1].HasField("dim_value"), (path.name, value.name)  # frames


def test_export_refuses_a_folder_that_holds_files(onnx_export, tmp_path):
    checkpoint, _ = onnx_export
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="is not empty"):
        export_module.export_onnx(checkpoint, tmp_path)
    assert (tmp_path / "notes.txt").exists()


def test_export_refuses_a_sampler_the_runtime_lacks_naming_it(onnx_export, tmp_path, monkeypatch):
    checkpoint, _ = onnx_export
    monkeypatch.setattr(export_module, "SAMPLERS", {"dpm": None})
    with pytest.raises(ExportError, match="the sampler is 'ddim'.*implements dpm"):
        export_module.export_onnx(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting", [
    "eval.sampler=dpmpp_2m", "eval.sampler=dpmpp_2m_sde", "eval.views=middle",
    "eval.timestep_spacing=quadratic",
])  # fmt: skip
def test_every_sampler_spacing_and_view_choice_is_exportable_and_recorded(onnx_export, setting):
    """What the host runs is what the export accepts, and the manifest records it (the
    graphs do not depend on these choices, so the manifest alone is checked here)."""
    checkpoint, _ = onnx_export
    loaded = load_model(checkpoint, torch.device("cpu"))
    key, value = setting.removeprefix("eval.").split("=")
    cfg = loaded.config
    if key == "timestep_spacing":
        cfg = replace(cfg, eval=replace(cfg.eval, timestep_spacing=TimestepSpacing(value)))
    else:
        cfg = with_sampling(cfg, **{key: value})  # as --sampler / --views set it
    export_module.check_exportable(loaded, cfg)
    raw = export_module._manifest(checkpoint, loaded, cfg, [], 18, onnx.__version__)
    recorded = {"sampler": raw["sampler"]["name"], "views": raw["inference"]["views"],
                "timestep_spacing": raw["sampler"]["timestep_spacing"]}  # fmt: skip
    assert recorded[key] == value
    assert raw["sampler"]["timesteps"] == make_sampler(cfg).timesteps
