"""Prediction: from a model and features to fused, post-processed labels.

    inference.py    the one prediction path: offset views, batching, every stream's samples,
                    fusion, post-processing
    fusion.py       weighted late fusion of the streams' probabilities
    postprocess.py  median / purge / mode filters -> labels
    uncertainty.py  per-frame uncertainty and error detection from the samples

Evaluation, prediction over folders and training's validation all call :mod:`.inference`.
"""
