"""Build the tf.distribute strategy named in the config; who is chief in a multi-worker job."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from emotion_tf.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)


def read_tf_config() -> dict[str, Any]:
    """The parsed `TF_CONFIG` environment variable ({} when unset)."""
    text = os.environ.get("TF_CONFIG", "") or "{}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({err}). Received: TF_CONFIG={text!r}"
        ) from err
    if not isinstance(value, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={text!r}")
    return value


def _check_tf_config(tf_config: dict[str, Any]) -> None:
    cluster = tf_config.get("cluster")
    task = tf_config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError("TF_CONFIG needs 'cluster' and 'task' for train.strategy=multi_worker")
    kind, index = task.get("type"), task.get("index", 0)
    hosts = cluster.get(kind)
    if not isinstance(hosts, list) or not isinstance(index, int) or not 0 <= index < len(hosts):
        raise ConfigError(
            f"TF_CONFIG task {kind}:{index} is not in its cluster {sorted(cluster)}. "
            f"Received: task={task!r}"
        )


def build_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy over all GPUs, the default strategy on a CPU-only machine.

    `multi_worker`: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (every worker
    runs the same command with its own `task`); it must be built before any other TF op.
    """
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
    elif name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multi_worker":
        tf_config = read_tf_config()
        if tf_config:
            _check_tf_config(tf_config)
        else:
            log.warning("train.strategy=multi_worker without TF_CONFIG: training as one worker")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ConfigError(f"train.strategy: unknown strategy. Received: train.strategy={name!r}")
    log.info(
        "strategy %s with %d replica(s)%s",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
        f" as {task_name()}" if task_name() else "",
    )
    return strategy


def task_name() -> str:
    """`worker-1` style name of this process's TF_CONFIG task ("" outside a cluster)."""
    task = read_tf_config().get("task") or {}
    return f"{task['type']}-{int(task.get('index', 0))}" if task.get("type") else ""


def is_chief() -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    tf_config = read_tf_config()
    task = tf_config.get("task") or {}
    cluster = tf_config.get("cluster") or {}
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def agree_on_epoch(strategy: tf.distribute.Strategy, saved: list[int]) -> int:
    """The epoch to resume from: the newest backup that every worker has (0: start afresh).

    Workers back up at the same epoch ends, so after a crash their newest backups differ by
    at most one epoch; each keeps two, so the oldest newest one is always available.
    """
    newest = max(saved, default=0)
    if not _several_workers(strategy):
        return newest
    agreed = min(_all_gather(strategy, newest))
    if agreed and agreed not in saved:
        raise ConfigError(
            f"workers cannot agree on a backup to resume from (they have epochs up to {agreed}, "
            f"this worker has {saved}); delete the backups of all workers to start over"
        )
    return agreed


def num_workers() -> int:
    """How many chief and worker tasks TF_CONFIG lists (1 outside a cluster)."""
    cluster = read_tf_config().get("cluster") or {}
    return max(1, sum(len(cluster.get(kind) or []) for kind in ("chief", "worker")))


def prepare_multi_worker_fit(
    model: Any, strategy: tf.distribute.Strategy, batch_shape: tuple[int, ...], classes: int
) -> None:
    """Let `model.fit` run under a MultiWorkerMirroredStrategy of several workers.

    Keras 3 (up to at least 3.15) fails there twice (keras-team/keras#20585,
    tensorflow/tensorflow#72388): `fit` all-reduces a whole input batch to learn its shapes,
    and it reduces each step's scalar logs along an axis they do not have. So: build the
    compiled loss, metrics and optimizer from a dummy local batch and skip that first step,
    and hand Keras the logs as 1-element vectors, which it averages over the replicas.
    Each replica's metrics cover its own share of the batch, so the logs are global means.
    """
    import numpy as np

    if not _several_workers(strategy):
        return
    with strategy.scope():
        model._symbolic_build(
            data_batch=(np.zeros((1, *batch_shape), "float32"), np.zeros((1, classes), "float32"))
        )
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def as_vectors(step: Any) -> Any:
        def wrapped(data: Any) -> dict[str, tf.Tensor]:
            return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

        return wrapped

    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
    """Return once every worker got here, so no worker exits while the chief still exports."""
    if _several_workers(strategy):
        _all_gather(strategy, 0)


def _several_workers(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and num_workers() > 1


def _all_gather(strategy: tf.distribute.Strategy, value: int) -> list[int]:
    """`value` from every replica of the cluster (a collective: all workers must call it)."""

    def gather() -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        return context.all_gather(tf.constant([value], tf.int64), axis=0)

    gathered = strategy.experimental_local_results(strategy.run(tf.function(gather)))[0]
    return [int(v) for v in gathered.numpy()]


@contextlib.contextmanager
def worker_failures_reported(strategy: tf.distribute.Strategy) -> Iterator[None]:
    """Turn "another worker died" (a collective op failing) into one clear ClusterError."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as err:
        if not _several_workers(strategy):
            raise
        raise ClusterError(
            f"lost contact with another worker of the multi-worker job ({type(err).__name__}). "
            "Restart every worker with the same command: training resumes after the last "
            "epoch that all of them finished."
        ) from err
