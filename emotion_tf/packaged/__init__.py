"""The happy/sad model that ships inside the package, and the compact file format it is kept in.

`emotion_tf/packaged/happy_sad.npz` holds int8 weights with per-output-channel scales, the
float32 small tensors, and JSON metadata (resolved training config, its hash, class names,
metrics, temperature). `emotion-tf pack RUN_DIR` writes such a file from a finished run.
"""

from pathlib import Path

PACKAGED_MODEL_FILE = Path(__file__).resolve().parent / "happy_sad.npz"
