"""Tools around the pipeline: each serves one command.

    convert.py      reference checkpoints (DiffAct / 2s-DAS) -> this package's checkpoints
    init_config.py  a config for a new dataset folder
    report.py       the HTML report of a run or a prediction folder (templates/report.html)
    viz.py          per-video barcode plots
    annotations.py  segment annotation files (CSV/TSV) -> groundTruth/ and mapping.txt
"""
