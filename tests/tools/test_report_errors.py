"""The report as a tool for finding errors: per-video scores, the error track, per-stream
per-class scores, where the fusion helped, the review queue, training curves (hand-worked), and
the page used in a real browser: sorting, filtering, zoom, keyboard, the review queue."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_report import chromium  # noqa: F401  the headless browser fixture

from twostream_das.cli import main
from twostream_das.runs import RunDir, write_json
from twostream_das.tools.report import report_data, write_report
from twostream_das.tools.report_analysis import (
    error_track,
    fusion_help,
    per_stream_class,
    review_queue,
    training_curves,
    video_scores,
)

GT = np.array([0, 1, 1, 1, 1, 0, 2, 2, 2, 0])
FUSED = np.array([0, 1, 1, 1, 0, 0, 0, 2, 0, 1])
RGB = np.array([0, 1, 1, 0, 0, 0, 2, 2, 2, 0])


def test_error_track_marks_true_and_false_positives_at_iou_half():
    errors = error_track(GT, FUSED, background=[0])
    # fused foreground: 1 at 1-4 (IoU 3/4 with gt 1-5: hit), 2 at 7-8 (IoU 1/3: miss), 1 at 9-10
    assert errors["predicted"] == [[1, 4, 1], [7, 8, 0], [9, 10, 0]]
    assert errors["missed"] == [[6, 9]]  # gt's 2 segment matched nothing
    assert errors["wrong"] == [[4, 5], [6, 7], [8, 10]]


def test_video_scores_and_where_the_fusion_helped():
    scores = video_scores(GT, {"rgb": RGB, "fused": FUSED}, background=[0])
    assert scores["fused"]["acc"] == 60.0 and scores["rgb"]["acc"] == 80.0
    # fused F1@50: TP 1, FP 2, FN 1 -> P 1/3, R 1/2 -> 40
    assert scores["fused"]["f1@50"] == pytest.approx(40.0)
    (help_rgb,) = fusion_help([GT], {"rgb": [RGB]}, [FUSED])
    # rgb wrong at frames 3 and 4, fused right at 3; rgb right, fused wrong at 6, 8, 9
    assert help_rgb == {"stream": "rgb", "helped": 1, "hurt": 3, "frames": 10}
    rows = per_stream_class([GT], {"rgb": [RGB], "fused": [FUSED]}, ["bg", "a", "b"], [0])
    assert rows[0]["f1"] == {"rgb": None, "fused": None}  # background: no F1
    assert rows[2]["recall"] == {"rgb": 100.0, "fused": pytest.approx(100 / 3, abs=0.1)}
    assert rows[2]["f1"]["fused"] == 0.0 and rows[2]["f1"]["rgb"] == 100.0


def test_review_queue_from_review_csv_or_the_segments(tmp_path):
    entry = {"id": "v", "name": "v", "fps": 10.0, "segments": [
        {"label": "a", "label_id": 1, "start_frame": 0, "end_frame": 4, "start_s": 0.0,
         "end_s": 0.4, "confidence": 0.9, "uncertainty": None},
        {"label": "b", "label_id": 2, "start_frame": 4, "end_frame": 10, "start_s": 0.4,
         "end_s": 1.0, "confidence": 0.6, "uncertainty": None}]}
    queue = review_queue([("", tmp_path)], [entry])
    assert [(r["rank"], r["label"], r["score"]) for r in queue] == [(1, "b", 0.4), (2, "a", 0.1)]
    with (tmp_path / "review.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "video", "label", "start_s", "end_s", "score"])
        writer.writerow([1, "v", "a", 0.0, 0.4, 0.7])  # as predict ranked it
    assert [(r["label"], r["start_frame"], r["score"]) for r in
            review_queue([("", tmp_path)], [entry])] == [("a", 0, 0.7)]


def test_training_curves_mark_the_selected_epoch(tmp_path):
    run = RunDir(tmp_path)
    run.metrics_csv.write_text("epoch,seconds,lr,loss,val_score\n1,1,0.1,2.0,\n2,1,0.1,1.5,40\n"
                               "3,1,0.1,1.2,35\n")
    write_json(run.selection_json, {"best": {"epoch": 2}})
    curves = training_curves("fold 1", run)
    assert curves == {"run": "fold 1", "epochs": [1, 2, 3], "selected_epoch": 2,
                      "series": {"loss": [2.0, 1.5, 1.2], "val_score": [None, 40.0, 35.0]}}
    assert training_curves("x", RunDir(tmp_path / "none")) is None


@pytest.fixture(scope="module")
def evaluated_run(trained_run, tmp_path_factory) -> Path:
    """A copy of the session's trained run, evaluated with 2 samples (uncertainty)."""
    run = tmp_path_factory.mktemp("report_run") / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("*.lock", "predictions"))
    assert main(["evaluate", str(run), "--samples", "2", "--quiet"]) == 0
    return run


def test_a_run_report_holds_what_finds_the_errors(evaluated_run, tmp_path):
    data = report_data(evaluated_run, tmp_path)
    videos = data["videos"]
    assert [v["name"] for v in videos] == ["v0", "v1"]  # fold 1's test videos
    for v in videos:
        assert set(v["scores"]) == {"rgb", "flow", "fused"}
        assert set(v["errors"]) == {"predicted", "missed", "wrong"}
    queue = data["review"]
    assert [r["rank"] for r in queue] == list(range(1, len(queue) + 1))
    assert len(queue) == sum(len(v["segments"]) for v in videos)
    (curves,) = data["training"]
    assert curves["epochs"] == [1, 2, 3] and curves["selected_epoch"] in (1, 2, 3)
    m = data["metrics"]
    assert [h["stream"] for h in m["fusion_help"]] == ["rgb", "flow"]
    assert set(m["per_stream_class"][1]["f1"]) == {"rgb", "flow", "fused"}


def test_the_report_in_a_browser_sorts_zooms_steps_and_jumps(
    chromium, evaluated_run, tmp_path  # noqa: F811
):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = write_report(evaluated_run, tmp_path / "report.html")
    chromium.get(page.resolve().as_uri())
    js = chromium.execute_script
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]

    # per-video scores: the worst first; a header sorts, the filter hides
    table = chromium.find_element(By.ID, "per-video-table")
    order = lambda: [r.get_attribute("data-video")  # noqa: E731
                     for r in table.find_elements(By.CSS_SELECTOR, "tbody tr") if r.is_displayed()]
    accs = js("return DATA.videos.map(v => [v.id, v.scores.fused.acc])")
    assert order() == [v for v, _ in sorted(accs, key=lambda x: x[1])]
    header = table.find_element(By.CSS_SELECTOR, 'th[data-sort-key="video"]')
    header.click()
    v0, v1 = "fold 1: v0", "fold 1: v1"  # a run's videos are named by their fold
    assert order() == [v0, v1] and header.get_attribute("data-sort-dir") == "asc"
    header.click()
    assert order() == [v1, v0]
    chromium.find_element(By.ID, "video-filter").send_keys("v1")
    assert order() == [v1]

    # zoom with the buttons, the keyboard and the wheel; step by frame and by segment
    view = chromium.find_element(By.CSS_SELECTOR, f'details.video[data-video="{v0}"]')
    frames = js("return window.twostreamReport.views[0].v.num_frames")
    window = lambda: (float(view.get_attribute("data-view-start")),  # noqa: E731
                      float(view.get_attribute("data-view-end")))
    assert window() == (0, frames)
    view.find_element(By.CSS_SELECTOR, 'button[data-action="zoom in"]').click()
    start, end = window()
    assert end - start == pytest.approx(frames / 2)
    body = chromium.find_element(By.TAG_NAME, "body")
    body.send_keys("0")
    assert window() == (0, frames)
    js("""const c = window.twostreamReport.views[0].canvas, r = c.getBoundingClientRect();
          c.dispatchEvent(new WheelEvent("wheel", {deltaY: -100, clientX: r.left + r.width / 2,
                                                   clientY: r.top + 5, bubbles: true,
                                                   cancelable: true}));""")
    assert window()[1] - window()[0] == pytest.approx(frames * 0.8)
    before = window()
    canvas = view.find_element(By.CSS_SELECTOR, "canvas.timeline")
    ActionChains(chromium).move_to_element(canvas).click_and_hold().move_by_offset(-150, 0) \
        .release().perform()  # drag left: later frames come into view
    assert window()[0] > before[0] and window()[1] - window()[0] == pytest.approx(
        before[1] - before[0])
    assert view.get_attribute("data-playhead-frame") == "0"  # a drag is not a click
    body.send_keys("0")
    body.send_keys(Keys.ARROW_RIGHT)
    body.send_keys(Keys.ARROW_RIGHT)
    assert view.get_attribute("data-playhead-frame") == "2"
    body.send_keys(Keys.SHIFT, Keys.ARROW_RIGHT)  # the next fused segment, if there is one
    later = js("return window.twostreamReport.views[0].v.segments.map(s => s.start_frame)"
               ".find(s => s > 2) ?? null")
    assert view.get_attribute("data-playhead-frame") == str(later if later is not None else 2)
    body.send_keys(Keys.SHIFT, Keys.ARROW_LEFT)  # back to the start of the segment before
    expected = js("return window.twostreamReport.views[0].v.segments.map(s => s.start_frame)"
                  f".filter(s => s < {later if later is not None else 2}).pop()")
    assert view.get_attribute("data-playhead-frame") == str(expected)

    # the review queue: a row opens its video at the segment, zoomed around it
    first = chromium.find_element(By.CSS_SELECTOR, '#review-table tbody tr[data-rank="1"]')
    row = js("return DATA.review[0]")
    first.click()
    target = chromium.find_element(By.CSS_SELECTOR, f'details.video[data-video="{row["video"]}"]')
    assert target.get_attribute("open") is not None
    assert target.get_attribute("data-playhead-frame") == str(row["start_frame"])
    start, end = (float(target.get_attribute(a)) for a in ("data-view-start", "data-view-end"))
    assert start <= row["start_frame"] and row["end_frame"] <= end
    assert target.screenshot(str(tmp_path / "report_zoomed.png"))

    # the error row shows the fused segments' true / false positives in their colours
    colours = js("""
        const view = window.twostreamReport.views[0];
        view.setWindow(0, view.v.num_frames);
        const c = view.canvas, g = c.getContext("2d"), r = c.width / c.clientWidth;
        const plotW = c.clientWidth - 110 - 24, y = view.v.tracks.length * (18 + 4) + 4;
        return view.v.errors.predicted.map(([s, e, hit]) => {
          const x = 110 + (s + e) / 2 / view.v.num_frames * plotW;
          const px = g.getImageData(Math.round(x * r), Math.round(y * r), 1, 1).data;
          return [hit, "#" + Array.from(px.slice(0, 3)).map(v => v.toString(16)
                                                          .padStart(2, "0")).join("")];
        });""")
    assert colours and all(c == ("#2e9e4f" if hit else "#d23c2c") for hit, c in colours)

    # training curves with the selected epoch, per-stream tables
    canvas = chromium.find_element(By.CSS_SELECTOR, "canvas.curves")
    assert canvas.get_attribute("data-selected-epoch") == str(js(
        "return DATA.training[0].selected_epoch"))
    help_text = chromium.find_element(By.ID, "fusion-help").text
    assert "stream wrong, fused right" in help_text and "rgb" in help_text
    assert "flow F1@50" in chromium.find_element(By.ID, "per-stream-class").text
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    shot = tmp_path / "report_errors.png"
    js("window.scrollTo(0, 0)")
    assert chromium.save_screenshot(str(shot))
    print(f"screenshot: {shot}")


def test_a_review_row_plays_its_segment_and_stops(chromium, tmp_path):  # noqa: F811
    """predict's review.csv in a prediction folder with its video: a row plays the segment and
    the video pauses at the segment's end."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from test_report import CLASSES, tiny_video, write_labels

    pred, fps, labels = tmp_path / "pred", 10.0, np.repeat([0, 1, 2, 1], [6, 9, 8, 7])
    write_labels(pred, "clip", labels, {"rgb": labels})
    write_json(pred / "summary.json", {"fps": fps, "classes": CLASSES, "labels_dir": None})
    with (pred / "review.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "video", "label", "start_s", "end_s", "score"])
        writer.writerow([1, "clip", "cut", 0.6, 1.5, 0.9])  # frames 6-14
    video = tiny_video(tmp_path / "videos" / "clip.webm", len(labels), fps)
    page = write_report(pred, tmp_path / "report.html", [video])
    chromium.get(page.resolve().as_uri())
    js = chromium.execute_script
    wait = WebDriverWait(chromium, 20)
    wait.until(lambda d: js("return document.querySelector('video').readyState >= 1"))
    chromium.find_element(By.CSS_SELECTOR, '#review-table tbody tr[data-rank="1"]').click()
    wait.until(lambda d: js("return !document.querySelector('video').paused"))
    wait.until(lambda d: js("return document.querySelector('video').paused"))
    assert js("return document.querySelector('video').currentTime") == pytest.approx(1.5, abs=0.3)
    view = chromium.find_element(By.CSS_SELECTOR, 'details.video[data-video="clip"]')
    assert 13 <= int(view.get_attribute("data-playhead-frame")) <= 17
