from twostream_das.workflows.evaluation import results_table, sampling_line

SCORES = {"acc": 80.04, "edit": 70.0, "f1@10": 75.0, "f1@25": 70.5, "f1@50": 60.25}


def test_sampling_line_says_sampler_steps_grid_samples_and_views():
    results = {"sampler": "dpmpp_2m_sde", "steps": 2, "timestep_spacing": "quadratic",
               "samples": 4, "views": "middle"}
    assert sampling_line(results) == (
        "sampling: dpmpp_2m_sde, 2 steps (quadratic grid), 4 samples per video and stream, "
        "views middle"
    )


def test_sampling_line_of_an_older_results_file_reads_ddim_steps_and_leaves_out_the_rest():
    assert sampling_line({"ddim_steps": 25, "samples": 1}) == (
        "sampling: ddim, 25 steps, 1 sample per video and stream"
    )


def test_results_table_rows_then_the_sampling_it_was_scored_with():
    results = {"fusion_weights": {"rgb": 0.5, "flow": 0.5}, "rgb": SCORES, "flow": SCORES,
               "fused": SCORES, "sampler": "ddim", "steps": 25, "timestep_spacing": "linear",
               "samples": 1, "views": "all"}
    lines = results_table(results).splitlines()
    assert lines[2] == "| RGB only | 80.0 | 70.0 | 75.0 | 70.5 | 60.2 |"
    assert lines[4] == "| fused | 80.0 | 70.0 | 75.0 | 70.5 | 60.2 |"
    assert lines[5:] == [
        "", "sampling: ddim, 25 steps (linear grid), 1 sample per video and stream, views all"
    ]
