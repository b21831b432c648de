"""The report: the data it embeds (hand-worked), the HTML around it, and a real browser."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from twostream_das.cli import main
from twostream_das.errors import DataError
from twostream_das.outputs import write_prediction
from twostream_das.runs import write_json
from twostream_das.tools.report import (
    curve_points,
    render,
    report_data,
    results_sampling,
    runs_of,
    video_src,
    write_report,
)

# class and video names are user data: the report must show them as text, never as HTML
EVIL = "</script><img/src=x/onerror=window.pwned=1>"
CLASSES = ["background", "cut", EVIL]
VIDEO = 'clip<i>&"1"'
FPS = 2.0
FUSED = [0, 0, 1, 1, 1, 1]
GT = [0, 1, 1, 1, 2, 2]
STREAMS = {"rgb": [0, 1, 1, 1, 1, 1], "flow": [0, 0, 0, 2, 2, 2]}
# columns sum to 1; the fused label's probability per frame: 0.6 0.5 0.7 0.4 0.9 0.8
PROBS = np.array(
    [[0.6, 0.5, 0.2, 0.3, 0.05, 0.1], [0.3, 0.25, 0.7, 0.4, 0.9, 0.8],
     [0.1, 0.25, 0.1, 0.3, 0.05, 0.1]], dtype=np.float32
)
UNCERTAINTY = np.array([0.1, 0.3, 0.2, 0.6, 0.05, 0.4], dtype=np.float32)


def write_labels(folder: Path, name: str, fused, streams=STREAMS) -> None:
    write_prediction(folder / f"{name}.txt", fused, CLASSES)
    for stream, labels in streams.items():
        write_prediction(folder / "streams" / stream / f"{name}.txt", labels, CLASSES)


def write_gt(root: Path, name: str, labels) -> Path:
    (root / "groundTruth").mkdir(parents=True, exist_ok=True)
    (root / "groundTruth" / f"{name}.txt").write_text("".join(CLASSES[i] + "\n" for i in labels))
    (root / "mapping.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES)))
    return root / "groundTruth"


def prediction_folder(tmp_path: Path) -> Path:
    """A prediction folder as ``predict --labels`` writes it, with the uncertainty files."""
    pred = tmp_path / "pred"
    write_labels(pred, VIDEO, FUSED)
    np.save(pred / f"{VIDEO}_probs.npy", PROBS)
    np.save(pred / f"{VIDEO}_uncertainty.npy", UNCERTAINTY)
    segments = [
        {"label": "background", "label_id": 0, "start_frame": 0, "end_frame": 2, "num_frames": 2,
         "start_s": 0.0, "end_s": 1.0, "confidence": 0.55, "uncertainty": 0.2},
        {"label": "cut", "label_id": 1, "start_frame": 2, "end_frame": 6, "num_frames": 4,
         "start_s": 1.0, "end_s": 3.0, "confidence": 0.7, "uncertainty": 0.3125},
    ]
    write_json(pred / f"{VIDEO}_segments.json", {"fps": FPS, "segments": segments})
    gt_dir = write_gt(tmp_path / "data", VIDEO, GT)
    write_json(pred / "summary.json", {
        "fps": FPS, "classes": CLASSES, "background": ["background"], "labels_dir": str(gt_dir),
        "fusion_weights": {"rgb": 0.5, "flow": 1.0},
        "metrics": {"fused": {"acc": 50.0, "edit": 100.0, "f1@10": 66.7, "f1@25": 66.7,
                              "f1@50": 0.0}},
    })
    return pred


def test_runs_are_half_open_segments():
    assert runs_of(np.array([2, 2, 0, 1, 1, 1])) == [[0, 2, 2], [2, 3, 0], [3, 6, 1]]


def test_long_curves_keep_the_worst_frame_of_each_bin():
    values = np.array([0.1, 0.5, 0.2, 0.3, 0.05])
    # 5 frames in at most 2 points: bins of 3 frames, the last padded with its last frame
    assert curve_points(values, np.max, points=2) == {"step": 3, "values": [0.5, 0.3]}
    assert curve_points(values, np.min, points=2) == {"step": 3, "values": [0.1, 0.05]}
    assert curve_points(values, np.max, points=5) == {"step": 1, "values": values.tolist()}


def test_prediction_folder_data_hand_worked(tmp_path):
    data = report_data(prediction_folder(tmp_path), tmp_path)
    assert data["kind"] == "predictions"
    assert [c["name"] for c in data["classes"]] == CLASSES
    assert [c["background"] for c in data["classes"]] == [True, False, False]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c["color"]) for c in data["classes"])
    (video,) = data["videos"]
    assert (video["id"], video["fps"], video["num_frames"], video["video_src"]) == (
        VIDEO, FPS, 6, None
    )
    tracks = {t["name"]: t["runs"] for t in video["tracks"]}
    assert list(tracks) == ["ground truth", "rgb", "flow", "fused"]  # streams in weight order
    assert tracks["ground truth"] == [[0, 1, 0], [1, 4, 1], [4, 6, 2]]
    assert tracks["flow"] == [[0, 3, 0], [3, 6, 2]]
    assert tracks["fused"] == [[0, 2, 0], [2, 6, 1]]
    curves = {c["name"]: c for c in video["curves"]}
    assert curves["confidence"]["values"] == pytest.approx([0.6, 0.5, 0.7, 0.4, 0.9, 0.8])
    assert curves["uncertainty"]["values"] == pytest.approx(UNCERTAINTY.tolist(), abs=1e-4)
    assert curves["uncertainty"]["max"] == pytest.approx(0.6) and curves["confidence"]["step"] == 1
    assert video["columns"] == ["confidence", "uncertainty"]
    table = [(s["label"], s["start_s"], s["end_s"], s["uncertainty"]) for s in video["segments"]]
    assert table == [("background", 0.0, 1.0, 0.2), ("cut", 1.0, 3.0, 0.3125)]
    metrics = data["metrics"]
    # fused vs gt, background dropped: pred cut[2,6) vs gt cut[1,4): IoU 2/5 = 0.4 -> a hit at
    # 0.10 and 0.25, a false positive at 0.50; EVIL's gt segment [4,6) is never predicted.
    assert metrics["per_class_f1"] == [
        {"class": "background", "f1": None},
        {"class": "cut", "f1": {"f1@10": 100.0, "f1@25": 100.0, "f1@50": 0.0}},
        {"class": EVIL, "f1": {"f1@10": 0.0, "f1@25": 0.0, "f1@50": 0.0}},
    ]
    # rows ground truth, columns prediction: t0 bg->bg; t1 cut->bg; t2, t3 cut->cut;
    # t4, t5 EVIL->cut
    assert metrics["confusion"] == [[1, 0, 0], [1, 2, 0], [0, 2, 0]]
    assert metrics["num_videos"] == 1
    assert metrics["rows"] == [{"run": "all videos", "stream": "fused", "values": {
        "acc": 50.0, "edit": 100.0, "f1@10": 66.7, "f1@25": 66.7, "f1@50": 0.0}}]


def test_older_prediction_folder_without_summary_or_segments(tmp_path):
    pred = tmp_path / "old"
    write_labels(pred, "v", FUSED, {})
    data = report_data(pred, tmp_path)
    (video,) = data["videos"]
    # class names from the prediction file, segments from the labels, no curves, no metrics
    assert [c["name"] for c in data["classes"]] == ["background", "cut"]
    assert [t["name"] for t in video["tracks"]] == ["fused"]
    assert video["curves"] == [] and video["columns"] == [] and video["fps"] is None
    assert [(s["label"], s["start_frame"], s["end_frame"]) for s in video["segments"]] == [
        ("background", 0, 2), ("cut", 2, 6)
    ]
    assert data["metrics"] is None


def run_folder(folder: Path, root: Path, fold: int, weights: dict, fused, streams) -> Path:
    write_json(folder / "run.json", {
        "fold": fold,
        "config": {"dataset": {"root": str(root), "fps": FPS, "background": ["background"]}},
    })
    scores = {k: float(fold) for k in ("acc", "edit", "f1@10", "f1@25", "f1@50")}
    write_json(folder / "results.json", {
        "rgb": scores, "flow": scores, "fused": {**scores, "acc": 50.0 + fold},
        "fusion_weights": weights, "postprocess": {"kind": "purge", "window": 3}, "epoch": 7,
        "fold": fold, "samples": 4, "ddim_steps": 8,  # as written before sampler and views
        "uncertainty": {"auroc_mutual_information": 0.75, "ece": 0.5 / fold},
    })
    write_json(folder / "selection.json", {"best": {"epoch": 7, "fusion_weights": weights}})
    write_labels(folder / "predictions", "v", fused, streams)
    write_json(folder / "split.json", {"train": ["w"], "val": [], "test": ["v"]})
    return folder


def test_run_folder_data_hand_worked(tmp_path):
    root = tmp_path / "data"
    write_gt(root, "v", GT)
    run = run_folder(tmp_path / "run", root, 1, {"flow": 0.25, "rgb": 1.0}, FUSED, STREAMS)
    write_labels(run / "predictions", "stale", FUSED, {})  # not a test video of split.json
    data = report_data(run, tmp_path)
    assert data["kind"] == "run"
    (tmp_path / "demo.json").write_text("{}")  # a demo folder reports its run
    assert report_data(tmp_path, tmp_path)["videos"] == data["videos"]
    (video,) = data["videos"]
    assert video["id"] == "fold 1: v"
    assert [t["name"] for t in video["tracks"]] == ["ground truth", "flow", "rgb", "fused"]
    assert video["curves"] == [] and video["columns"] == []  # no probabilities stored
    assert [(s["start_s"], s["end_s"]) for s in video["segments"]] == [(0.0, 1.0), (1.0, 3.0)]
    m = data["metrics"]
    assert [(r["run"], r["stream"], r["values"]["acc"]) for r in m["rows"]] == [
        ("fold 1", "flow", 1.0), ("fold 1", "rgb", 1.0), ("fold 1", "fused", 51.0)
    ]
    assert m["selection"] == [{"run": "fold 1", "epoch": 7, "postprocess":
                               {"kind": "purge", "window": 3},
                               "fusion_weights": {"flow": 0.25, "rgb": 1.0}}]
    assert m["confusion"] == [[1, 0, 0], [1, 2, 0], [0, 2, 0]]
    assert m["uncertainty"] == [{"run": "fold 1", "samples": 4, "sampler": "ddim", "steps": 8,
                                 "views": "all", "auroc_mutual_information": 0.75, "ece": 0.5}]


def test_results_sampling_reads_the_keys_and_older_files():
    new = {"samples": 4, "sampler": "dpmpp_2m", "steps": 3, "views": "middle"}
    assert results_sampling({**new, "acc": 1.0}) == new
    assert results_sampling({"samples": 1, "ddim_steps": 25}) == {
        "samples": 1, "sampler": "ddim", "steps": 25, "views": "all"}


def test_cv_folder_pools_the_runs(tmp_path):
    root = tmp_path / "data"
    write_gt(root, "v", GT)
    cv = tmp_path / "cv"
    weights = {"rgb": 1.0, "flow": 1.0}
    run_folder(cv / "fold1_seed0", root, 1, weights, FUSED, STREAMS)
    run_folder(cv / "fold2_seed0", root, 2, weights, GT, STREAMS)  # a perfect second run
    mean_std = {"fused": {k: {"mean": 51.5, "std": 0.7} for k in ("acc", "edit")}}
    write_json(cv / "summary.json", {
        "runs": [{"fold": 1, "seed": 0}, {"fold": 2, "seed": 0}],
        "per_fold": {}, "summary": mean_std,
    })
    data = report_data(cv, tmp_path)
    assert data["kind"] == "cv"
    assert [v["id"] for v in data["videos"]] == ["fold1_seed0: v", "fold2_seed0: v"]
    m = data["metrics"]
    assert m["mean_std"] == mean_std and m["num_videos"] == 2
    assert [r["run"] for r in m["rows"] if r["stream"] == "fused"] == ["fold1_seed0", "fold2_seed0"]
    # frames of both runs: the first as above, the second all on the diagonal
    assert m["confusion"] == [[2, 0, 0], [1, 5, 0], [0, 2, 2]]
    # cut: run 1 a hit at 0.10/0.25, FP at 0.50; run 2 a hit -> @50 TP 1 FP 1 FN 1 -> 50
    assert m["per_class_f1"][1]["f1"] == pytest.approx({"f1@10": 100, "f1@25": 100, "f1@50": 50})
    # EVIL: run 2 TP 1, run 1 FN 1 -> P 1, R 1/2 -> 66.7
    assert m["per_class_f1"][2]["f1"]["f1@50"] == pytest.approx(200 / 3)


def test_html_escapes_user_strings_and_embeds_everything(tmp_path):
    data = report_data(prediction_folder(tmp_path), tmp_path)
    page = render({**data, "title": f"report {EVIL}"})
    assert EVIL not in page and "<img" not in page  # neither in the title nor in the JSON
    assert "&lt;/script&gt;&lt;img/src=x/onerror=window.pwned=1&gt;" in page  # the title
    assert page.count("</script>") == 2  # the template's own two script elements only
    blob = page.split('type="application/json">')[1].split("</script>")[0]
    assert json.loads(blob)["classes"][2]["name"] == EVIL  # the JSON reads back intact
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from a network


def test_video_src_is_relative_and_quoted(tmp_path):
    video = tmp_path / "videos" / "my clip#1.mp4"
    assert video_src(video, tmp_path / "out") == "../videos/my%20clip%231.mp4"


def test_a_single_video_file_pairs_with_a_single_video_and_names_match_otherwise(tmp_path):
    pred = prediction_folder(tmp_path)
    (tmp_path / "vids").mkdir()
    other = tmp_path / "vids" / "whatever.webm"
    other.write_bytes(b"")
    data = report_data(pred, tmp_path, [other])
    assert data["videos"][0]["video_src"] == "vids/whatever.webm"
    write_labels(pred, "second", FUSED, {})
    named = tmp_path / "vids" / "second.mp4"
    named.write_bytes(b"")
    srcs = [v["video_src"] for v in report_data(pred, tmp_path, [tmp_path / "vids"])["videos"]]
    assert srcs == [None, "vids/second.mp4"]  # sorted names: clip<i>..., second
    with pytest.raises(DataError, match="does not exist"):
        report_data(pred, tmp_path, [tmp_path / "missing.mp4"])


def test_cli_writes_rewrites_its_own_report_and_refuses_other_files(tmp_path, capsys):
    pred = prediction_folder(tmp_path)
    out = tmp_path / "page" / "report.html"
    assert main(["report", str(pred), "--out", str(out)]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    assert "twostream_das report" in out.read_text()
    assert main(["report", str(pred), "--out", str(out)]) == 0  # its own page: rewritten
    assert main(["report", str(pred)]) == 0 and (pred / "report.html").is_file()  # the default
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    assert main(["report", str(pred), "--out", str(mine)]) == 2
    assert mine.read_text() == "<html>my notes</html>"
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "is not a prediction folder" in capsys.readouterr().err
    (pred / f"{VIDEO}_probs.npy").write_bytes(b"not numpy")
    assert main(["report", str(pred), "--out", str(out)]) == 2
    assert "_probs.npy: " in capsys.readouterr().err


# ----------------------------------------------------------------------------- real browser

BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--window-size=1280,1400",
)


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium driven by selenium, or a skip that says what is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
    )
    from selenium.webdriver.chrome.service import Service

    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(
            "no headless Chromium here: the Debian packages chromium and chromium-driver are "
            "needed (.ci/run installs them when it runs as root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)  # no driver download
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def tiny_video(path: Path, frames: int, fps: float) -> Path:
    """A real VP8 WebM of a bar growing frame by frame (OpenCV)."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) makes the test video")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, (64, 48))
    assert writer.isOpened(), "OpenCV cannot write VP8"
    for i in range(frames):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, : 2 * i] = (40, 160, 40)
        writer.write(frame)
    writer.release()
    return path


def test_report_in_a_real_browser(chromium, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # two videos of 30 frames at 10 fps: "played" has a video file, "plain" has none
    pred, fps, labels = tmp_path / "pred", 10.0, np.repeat([0, 1, 2, 1], [6, 9, 8, 7])
    for name in ("played", "plain"):
        write_labels(pred, name, labels, {"rgb": np.roll(labels, 2)})
    probs = np.full((len(CLASSES), len(labels)), 0.2, np.float32)
    probs[labels, np.arange(len(labels))] = 0.6
    np.save(pred / "played_probs.npy", probs)
    np.save(pred / "played_uncertainty.npy", np.linspace(0, 1, len(labels), dtype=np.float32))
    write_json(pred / "summary.json", {"fps": fps, "classes": CLASSES, "labels_dir": None})
    video = tiny_video(tmp_path / "videos" / "played.webm", len(labels), fps)
    page = write_report(pred, tmp_path / "out" / "report.html", [video])
    chromium.get(page.resolve().as_uri())
    wait = WebDriverWait(chromium, 20)
    wait.until(lambda d: d.execute_script("return document.querySelector('video').readyState >= 1"))
    assert chromium.execute_script("return document.querySelector('video').duration") == (
        pytest.approx(3.0, abs=0.2)
    )
    assert chromium.execute_script("return window.pwned") is None  # no injected script ran
    assert not chromium.find_elements(By.TAG_NAME, "img")
    legend = chromium.find_element(By.ID, "legend").text
    assert EVIL in legend

    # the timelines are drawn: the fused row shows each segment's class colour
    colours = chromium.execute_script(
        """
        const view = window.twostreamReport.views[1];  // sorted: "plain", "played"
        const c = view.canvas, g = c.getContext("2d"), r = c.width / c.clientWidth;
        const plotW = c.clientWidth - 110 - 24;  // the label column, the right margin
        const y = 1 * (18 + 4) + 9;  // the middle of row 1 (no ground truth: rgb, fused)
        return view.v.tracks[1].runs.map(([s, e]) => {
          const x = 110 + (s + e) / 2 / view.v.num_frames * plotW;
          return Array.from(g.getImageData(Math.round(x * r), Math.round(y * r), 1, 1).data);
        });
        """
    )
    expected = chromium.execute_script(
        "return window.twostreamReport.views[1].v.tracks[1].runs.map(r => DATA.classes[r[2]].color)"
    )
    assert ["#{:02x}{:02x}{:02x}".format(*px[:3]) for px in colours] == expected

    sections = chromium.find_elements(By.CSS_SELECTOR, "details.video")
    names = [s.get_attribute("data-video") for s in sections]
    assert names == ["plain", "played"]
    plain, played = sections
    # clicking the third segment seeks the video and moves the playhead
    row = played.find_elements(By.CSS_SELECTOR, ".segments tbody tr")[2]
    row.click()
    assert played.get_attribute("data-playhead-frame") == "15"
    assert chromium.execute_script(
        "return document.querySelector('video').currentTime"
    ) == pytest.approx(1.5)
    wait.until(lambda d: not d.execute_script("return document.querySelector('video').seeking"))
    assert played.get_attribute("data-playhead-frame") == "15"  # the video agrees once seeked
    assert "current" in row.get_attribute("class")
    # without a video the playhead moves all the same
    plain.find_elements(By.CSS_SELECTOR, ".segments tbody tr")[3].click()
    assert plain.get_attribute("data-playhead-frame") == "23"
    # playing the video carries the playhead along
    chromium.execute_script("document.querySelector('video').play()")
    wait.until(lambda d: int(played.get_attribute("data-playhead-frame")) >= 20)
    chromium.execute_script("document.querySelector('video').pause()")
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    shot = tmp_path / "report.png"
    assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
