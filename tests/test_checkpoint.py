import argparse

import pytest
import torch

from twostream_das.checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
)
from twostream_das.choices import PostprocessChoice, Selection
from twostream_das.config import PostprocessKind, load_config
from twostream_das.errors import CheckpointError
from twostream_das.tools.upgrade import upgrade_file

SELECTION = Selection(3, {"rgb": 0.3, "flow": 0.7}, PostprocessChoice(PostprocessKind.PURGE, 5),
                      "mean", 70.25)


def _checkpoint(epoch=3):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    cfg = load_config("demo", ["train.epochs=7"])
    return model, make_checkpoint(
        model, cfg, ["background", "a", "b"], {"rgb": 4, "flow": 6}, epoch,
        optimizer=optimizer.state_dict(),
        metrics={"fused": {"acc": 50.0}},
        selection=SELECTION,
        progress={"fold": 1, "finished": False},
    )


def test_round_trip_with_safe_loading(tmp_path):
    model, ckpt = _checkpoint()
    path = save_checkpoint(tmp_path / "sub" / "last.pt", ckpt)
    # the file itself loads under weights_only=True: builtins and tensors only
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"weights", "optimizer", "config", "label_names", "stream_dims", "epoch",
                        "metrics", "version"}
    back = load_checkpoint(path)
    assert back.epoch == 3 and back.version == CHECKPOINT_VERSION
    assert back.label_names == ["background", "a", "b"]
    assert back.stream_dims == {"rgb": 4, "flow": 6}
    assert back.to_config().train.epochs == 7
    for key, value in model.state_dict().items():
        assert torch.equal(back.weights[key], value)
    assert back.optimizer["state"][0]["exp_avg"].shape == (3, 4)
    assert back.selection.fusion_weights == {"rgb": 0.3, "flow": 0.7}
    assert back.selection == SELECTION
    assert raw["selection"]["fusion_weights"] == {"rgb": 0.3, "flow": 0.7}  # stored as a dict


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    _, ckpt = _checkpoint()
    save_checkpoint(tmp_path / "a.pt", ckpt)
    save_checkpoint(tmp_path / "a.pt", _checkpoint(epoch=4)[1])
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert load_checkpoint(tmp_path / "a.pt").epoch == 4


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    _, ckpt = _checkpoint()
    save_checkpoint(tmp_path / "a.pt", ckpt)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "a.pt", _checkpoint(epoch=9)[1])
    assert load_checkpoint(tmp_path / "a.pt").epoch == 3
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    partial = tmp_path / "partial.pt"
    torch.save({"weights": {}}, partial)
    with pytest.raises(CheckpointError, match="lacks config"):
        load_checkpoint(partial)
    old = tmp_path / "old.pt"
    data = _checkpoint()[1].as_dict()
    data["version"] = 0
    torch.save(data, old)
    with pytest.raises(CheckpointError, match="version 0; this twostream_das reads version 2, "
                       "and `twostream-das upgrade` takes version 1"):
        load_checkpoint(old)
    data["version"] = 1
    torch.save(data, old)
    with pytest.raises(CheckpointError, match="version 1, the format of an older twostream_das; "
                       f"run `twostream-das upgrade {old}`"):
        load_checkpoint(old)


def test_pickled_objects_are_refused(tmp_path):
    data = _checkpoint()[1].as_dict()
    data["args"] = argparse.Namespace(lr=1)  # what research code stores
    path = tmp_path / "unsafe.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "unsafe.pt" in message and "pickled Python object (argparse.Namespace)" in message
    assert "never unpickled" in message
    # torch's advice to retry unsafely is never passed on to the user
    assert "weights_only=False" not in message and "will likely succeed" not in message


def test_a_folder_or_garbage_given_as_checkpoint_is_explained(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", _checkpoint()[1])
    with pytest.raises(CheckpointError, match=r"run is a folder; expected a file such as "
                       r".*run/checkpoints/best\.pt"):
        load_checkpoint(run)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(garbage)
    assert "weights_only=False" not in str(err.value) and "garbage.pt cannot be read" in str(
        err.value)


def test_checkpoint_dataclass_is_plain():
    _, ckpt = _checkpoint()
    assert isinstance(ckpt, Checkpoint)
    assert isinstance(ckpt.config, dict) and ckpt.config["name"] == "demo"


def test_stored_selections_of_versions_1_and_2_load_typed(tmp_path):
    """Selections were stored as the same plain dict since version 1; ``temperatures`` came
    later (absent: none). Both versions load into a checked Selection (version 1 once
    ``twostream-das upgrade`` has written it in today's format)."""
    for version in (1, 2):
        data = _checkpoint()[1].as_dict()
        if version == 1:
            config = data["config"]
            config["dataset"].update(config["dataset"].pop("streams"))
            config["fusion"] = {k: v for k, v in config["fusion"].items() if k != "weights"}
        del data["selection"]["temperatures"]
        data["version"] = version
        path = tmp_path / f"v{version}.pt"
        torch.save(data, path)
        back = load_checkpoint(path if version == 2 else upgrade_file(path).target)
        assert back.selection == SELECTION and back.selection.temperatures == {}
        assert list(back.selection.fusion_weights) == ["rgb", "flow"]


def test_a_bad_stored_selection_is_an_error_naming_the_file(tmp_path):
    data = _checkpoint()[1].as_dict()
    data["selection"]["fusion_weights"] = {"rgb": 0.3, "pose": 0.7}  # not the stored streams
    path = tmp_path / "bad.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=r"bad.pt has an invalid selection: fusion_weights "
                                              r"names \['pose', 'rgb'\]; expected every stream"):
        load_checkpoint(path)
