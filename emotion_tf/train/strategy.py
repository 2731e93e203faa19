"""Build the tf.distribute strategy named in the config."""

from __future__ import annotations

import logging

import tensorflow as tf

from emotion_tf.errors import ConfigError

log = logging.getLogger(__name__)


def build_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy over all GPUs, the default strategy on a CPU-only machine."""
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
    elif name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ConfigError(f"train.strategy: unknown strategy. Received: train.strategy={name!r}")
    log.info(
        "strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    return strategy


def is_chief() -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    import json
    import os

    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task") or {}
    cluster = tf_config.get("cluster") or {}
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0
