import json
import math

import pytest

from twostream_das.choices import FusionWeights, PostprocessChoice, Selection
from twostream_das.config import PostprocessKind, load_config
from twostream_das.errors import ConfigError


def _selection(**changes):
    fields = {
        "epoch": 4,
        "fusion_weights": {"rgb": 0.4, "flow": 0.6},
        "postprocess": PostprocessChoice(PostprocessKind.MEDIAN, 5),
        "metric": "mean",
        "score": 71.5,
        "metrics": {"fused": {"acc": 80.0}},
        "temperatures": {"rgb": 1.5, "flow": 0.5},
    }
    return Selection(**{**fields, **changes})


def test_fusion_weights_are_a_checked_read_only_mapping_in_stream_order():
    w = FusionWeights.of({"flow": 1, "rgb": 0.25}, ["rgb", "flow"])
    assert list(w) == ["rgb", "flow"] and w["flow"] == 1.0 and isinstance(w["flow"], float)
    assert w == {"rgb": 0.25, "flow": 1.0} and dict(w) == w.to_dict() == {"rgb": 0.25, "flow": 1.0}
    assert FusionWeights.from_dict(w.to_dict(), ["rgb", "flow"]) == w
    assert FusionWeights.uniform(["a", "b", "c", "d"]).to_dict() == {k: 0.25 for k in "abcd"}
    with pytest.raises(TypeError):
        w["rgb"] = 0.5  # type: ignore[index]


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"rgb": 1.2, "flow": 0.5}, r"key.rgb = 1.2 is invalid; expected in \[0, 1\]"),
     ({"rgb": 0.5, "flow": -0.1}, r"key.flow = -0.1 is invalid"),
     ({"rgb": 0.5, "flow": "0.5"}, r"key.flow = '0.5' is invalid"),
     ({"rgb": True, "flow": 0.5}, r"key.rgb = True is invalid"),
     ({"rgb": 0.0, "flow": 0.0}, r"key \{'rgb': 0.0, 'flow': 0.0\} are all 0; expected one > 0"),
     ({"rgb": 0.5}, r"key names \['rgb'\]; expected every stream of dataset.streams, "
                    r"\['rgb', 'flow'\], and no other key"),
     ({"rgb": 0.5, "flow": 0.5, "pose": 0.5}, r"key names \['flow', 'pose', 'rgb'\]")],
)
def test_bad_fusion_weights_are_errors_naming_the_key_stream_and_value(weights, message):
    with pytest.raises(ConfigError, match=message):
        FusionWeights.of(weights, ["rgb", "flow"], "key")


def test_fusion_weights_cannot_be_built_unchecked():
    with pytest.raises(ConfigError, match="all 0"):
        FusionWeights({"rgb": 0.0})
    with pytest.raises(ConfigError, match="names"):
        FusionWeights({})


def test_fusion_weights_of_the_config():
    assert FusionWeights.from_config(load_config("gtea")) == {"rgb": 0.5, "flow": 0.5}
    cfg = load_config("gtea", ["fusion.weights={flow: 0.7, rgb: 0.3}"])
    assert list(FusionWeights.from_config(cfg).items()) == [("rgb", 0.3), ("flow", 0.7)]


def test_postprocess_choice_round_trip_and_errors():
    choice = PostprocessChoice(PostprocessKind.PURGE, 3)
    assert choice.to_dict() == {"kind": "purge", "window": 3}
    assert PostprocessChoice.from_dict({"kind": "purge", "window": 3}) == choice
    assert PostprocessChoice.from_dict({"kind": "purge", "window": 3.0}) == choice  # JSON number
    assert PostprocessChoice.from_config(load_config("gtea", ["postprocess.window=7"])).window == 7
    with pytest.raises(ConfigError, match=r"postprocess kind 'smooth' is invalid; expected one of "
                                          r"none, purge, diffact_purge, median, mode"):
        PostprocessChoice.from_dict({"kind": "smooth", "window": 3})
    with pytest.raises(ConfigError, match=r"postprocess window 0 is invalid; expected an integer"):
        PostprocessChoice(PostprocessKind.MEDIAN, 0)
    with pytest.raises(ConfigError, match=r"window 2.5 is invalid"):
        PostprocessChoice.from_dict({"kind": "median", "window": 2.5})
    with pytest.raises(ConfigError, match=r"postprocess lacks 'window' \(has \['kind'\]\)"):
        PostprocessChoice.from_dict({"kind": "median"})


def test_selection_round_trips_through_json():
    sel = _selection()
    assert isinstance(sel.fusion_weights, FusionWeights)
    stored = json.loads(json.dumps(sel.to_dict()))
    assert stored == {
        "epoch": 4,
        "fusion_weights": {"rgb": 0.4, "flow": 0.6},
        "temperatures": {"rgb": 1.5, "flow": 0.5},
        "postprocess": {"kind": "median", "window": 5},
        "metric": "mean",
        "score": 71.5,
        "metrics": {"fused": {"acc": 80.0}},
    }
    assert Selection.from_dict(stored) == sel
    assert Selection.from_dict(stored, ["rgb", "flow"]) == sel
    old = {k: v for k, v in stored.items() if k != "temperatures"}  # stored before the option
    assert Selection.from_dict(old).temperatures == {}
    unselected = Selection.configured(load_config("gtea"), epoch=2)
    assert math.isnan(Selection.from_dict(unselected.to_dict()).score)
    assert unselected.fusion_weights == {"rgb": 0.5, "flow": 0.5} and unselected.epoch == 2


@pytest.mark.parametrize(
    ("change", "streams", "message"),
    [({"epoch": -1}, None, r"selection epoch -1 is invalid; expected an integer >= 0"),
     ({"metric": "auc"}, None, r"selection metric 'auc' is invalid; expected one of acc\|edit"),
     ({"temperatures": {"pose": 1.0}}, None, r"temperatures name \['pose'\], which have no "
                                             r"fusion weight"),
     ({"temperatures": {"rgb": 0.0}}, None, r"temperature of rgb = 0.0 is invalid"),
     ({"fusion_weights": {"rgb": 2.0, "flow": 0.5}}, None, r"fusion_weights.rgb = 2.0"),
     ({}, ["rgb", "pose"], r"fusion_weights names \['flow', 'rgb'\]; .* \['rgb', 'pose'\]"),
     ({"postprocess": {"kind": "purge"}}, None, r"postprocess lacks 'window'"),
     ({"score": "high"}, None, r"selection score = 'high' is invalid; expected a number")],
)
def test_bad_stored_selections_are_errors_naming_the_key(change, streams, message):
    data = {**_selection().to_dict(), **change}
    with pytest.raises(ConfigError, match=message):
        Selection.from_dict(data, streams)


def test_a_stored_selection_lacking_a_key_says_which():
    data = _selection().to_dict()
    del data["postprocess"]
    with pytest.raises(ConfigError, match=r"selection lacks 'postprocess'"):
        Selection.from_dict(data)
    with pytest.raises(ConfigError, match=r"selection is list \[\]; expected a mapping"):
        Selection.from_dict([])  # type: ignore[arg-type]
