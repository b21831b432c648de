"""Prediction: from a model and features to fused, post-processed labels.

    inference.py    the one prediction path: offset views, batching, every stream's samples,
                    fusion, post-processing
    stacked.py      the stacked streams: several streams' networks as one batched pass, and
                    the choice of it (prediction decides how the model's streams run)
    fusion.py       weighted late fusion of the streams' probabilities
    postprocess.py  median / purge / mode filters -> labels
    uncertainty.py  per-frame uncertainty and error detection from the samples

Evaluation, prediction over folders and training's validation all call :mod:`.inference`.
"""
