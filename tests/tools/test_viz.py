import numpy as np
import pytest

from twostream_das.tools.viz import class_colors, plot_barcodes


def test_barcode_png_has_a_row_per_stream(tmp_path):
    gt = np.repeat([0, 1, 2, 0], [5, 7, 3, 6])  # T = 21 (odd)
    rows = {"GT": gt, "RGB": np.roll(gt, 1), "FLOW": np.roll(gt, -1), "fused": gt}
    path = plot_barcodes(rows, ["background", "cut", "pour"], tmp_path / "v.png", title="v", fps=15)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_barcode_rejects_ragged_rows(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        plot_barcodes({"a": np.zeros(3, int), "b": np.zeros(4, int)}, ["x"], tmp_path / "v.png")


def test_neighbouring_classes_get_distinct_colours():
    colors = class_colors(48)
    assert colors.shape == (48, 4)
    assert all(not np.allclose(colors[i], colors[i + 1]) for i in range(47))
