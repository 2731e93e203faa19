"""Shared fixtures: tiny generated data sets, tiny configs, and the path to ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SHARED_ENV = "EMOTION_TF_REQUIRE_SHARED_DATA"


# The longest modules (serial seconds on 2 cores, longest first). pyproject runs the suite with
# `--dist loadfile` in this order, so that no long module starts last and runs alone at the end.
LONGEST_MODULES = (
    "test_real_data",
    "test_benchmarks_smoke",
    "test_finetune",
    "test_faults",
    "test_tfrecord",
    "test_export_contract",
    "test_training_guards",
    "test_multi_worker",
    "test_bad_input",
    "test_fer_recipe",
    "test_report",
    "test_explain",
    "test_averaging",
    "test_video_end_to_end",
    "test_serve_hardening",
    "test_end_to_end",
)


def pytest_configure(config: pytest.Config) -> None:
    """Split the CPU into two logical devices before any TF op, for real 2-replica tests."""
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        return  # the pytest-xdist controller runs no test: only its workers need TensorFlow
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first (see LONGEST_MODULES); other tests keep their order."""
    rank = {name: index for index, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Training sets Keras' global dtype policy; a test that trains in mixed precision must not
    leave it for the next test (which would then build bfloat16 models)."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """`../shared/data` beside the repository (or $EMOTION_TF_SHARED_DATA).

    Skipped where absent (users' machines); CI sets EMOTION_TF_REQUIRE_SHARED_DATA=1 so a
    missing folder fails instead.
    """
    path = Path(os.environ.get("EMOTION_TF_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "fer2013-happy-sad").is_dir():
        message = f"shared data not found at {path} (only CI and developer machines have it)"
        if os.environ.get(REQUIRE_SHARED_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def fer_dir(shared_data_dir: Path) -> Path:
    return shared_data_dir / "fer2013-happy-sad"


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic happy/sad set (train/validation) in every supported format."""
    from emotion_tf.data.demo import generate_demo_dataset

    root = tmp_path_factory.mktemp("tiny") / "data"
    generate_demo_dataset(root, per_class=24, seed=7)
    return root


def tiny_overrides(run_dir: Path, data_dir: Path, **extra: object) -> list[str]:
    """Overrides that make a seconds-long run: 32 px, 1/16 width, batch 8."""
    values = {
        "data.data_dir": str(data_dir),
        "train.run_dir": str(run_dir),
        "model.input_size": 32,
        "model.width": 0.0625,
        "data.batch_size": 8,
        "train.epochs": 1,
        "train.learning_rate": 0.001,
        "train.verbose": 0,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="session")
def tiny_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One seconds-long training run with its export (version 1), shared by the session.

    For tests that need *a* trained model and its run folder; treat it as read-only (write
    into tmp_path instead).
    """
    from emotion_tf.config import load_config
    from emotion_tf.train.trainer import train

    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    overrides = tiny_overrides(
        run_dir, tiny_data_dir, **{"train.epochs": 2, "train.strategy": "default"}
    )
    return train(load_config(None, overrides))


@pytest.fixture(scope="session")
def tiny_export(tiny_run) -> Path:
    """The shared tiny run's export (a version folder)."""
    return tiny_run.export_path
