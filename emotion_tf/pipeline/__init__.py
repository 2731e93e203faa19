"""The one photo pipeline: every door (CLI predict/evaluate/explain, the Python API, serve,
video frames, the training face scan, the benchmarks) reads a photo the same way.

    source (path / bytes / array) -> decode (limits.py) -> faces (locate) -> crops
    -> batches through the model (predictors: flip and calibration) -> answers (photo rule)

`options.py` holds the defaults, chosen once; `decode.py` turns what a door has into pixels;
`run.py` finds the faces, cuts the crops, batches them and returns per-face and per-photo
answers (`PhotoAnswer`).
"""
