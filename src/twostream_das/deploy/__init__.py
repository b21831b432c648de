"""Deploying a checkpoint without PyTorch: ONNX graphs and a numpy + onnxruntime runtime.

    twostream-das export CKPT --out DIR        # export.py (needs torch, onnx, onnxscript)
    from twostream_das.deploy.runtime import OnnxModel          # numpy + onnxruntime only
    model = OnnxModel.load(DIR)
    result = model.predict_video({"rgb": rgb_DxT, "flow": flow_DxT})

- :mod:`.bundle`: the folder's JSON manifest (what the host needs beside the graphs), its
  checks (hashes, versions); no torch.
- :mod:`.host`: the host-side steps in numpy (the samplers, fusion, post-processing,
  segments, the noise seeds), each pinned to the package's own by tests; no torch, no scipy.
- :mod:`.runtime`: onnxruntime sessions, the sampler loop over the streams, and the files
  ``predict`` writes; no torch.
- :mod:`.export`: the exporter (torch).

Importing this package imports nothing heavy; ``twostream_das/__init__.py`` is light too, so
``twostream_das.deploy.runtime`` runs where torch is not installed (a test says so).
"""
