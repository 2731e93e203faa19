"""Config loading, overrides and validation errors that name the key."""

from pathlib import Path

import pytest
import yaml

from emotion_tf.config import Config, flat_settings, load_config, parse_override
from emotion_tf.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_validate():
    config = load_config()
    assert isinstance(config, Config)
    assert config.model.input_size == 227


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_apply_every_key(path: Path):
    """Each key a shipped config sets reaches the loaded Config with the value written."""
    config = load_config(path)
    written = flat_settings(yaml.safe_load(path.read_text()))
    assert written, f"{path} sets nothing"
    loaded = flat_settings(config.to_dict())
    for key, value in written.items():
        assert loaded[key] == value, key


def test_configs_folder_has_the_documented_recipes():
    assert {"default.yaml", "fer2013.yaml"} <= {p.name for p in (REPO / "configs").glob("*.yaml")}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.optimizer=adam", "train.momentum=0.5"], "train.momentum is used by the sgd"),
        (["train.optimizer=adamw", "train.momentum=0.5"], "train.momentum is used by the sgd"),
        (["train.optimizer=adam", "train.weight_decay=0.01"], "set train.optimizer=adamw"),
    ],
)
def test_options_the_optimizer_ignores_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_options_the_optimizer_uses_are_accepted():
    sgd = load_config(None, ["train.optimizer=sgd", "train.momentum=0.5"])
    assert sgd.train.momentum == 0.5
    adamw = load_config(None, ["train.optimizer=adamw", "train.weight_decay=0.01"])
    assert adamw.train.weight_decay == 0.01


def test_override_parses_yaml_values():
    assert parse_override("train.epochs=3") == {"train": {"epochs": 3}}
    assert parse_override("data.augment.flip=false") == {"data": {"augment": {"flip": False}}}
    config = load_config(None, ["train.learning_rate=1e-3", "model.input_size=64"])
    assert config.train.learning_rate == pytest.approx(1e-3)
    assert config.model.input_size == 64


def test_int_is_accepted_for_float():
    assert load_config(None, ["train.learning_rate=1"]).train.learning_rate == 1.0


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.epoch=3", "train.epoch"),
        ("nonsense=1", "nonsense"),
        ("train.epochs=three", "train.epochs"),
        ("train.epochs=0", "train.epochs"),
        ("model.channels=2", "model.channels"),
        ("train.strategy=tpu", "train.strategy"),
        ("data.augment.zoom=1.5", "data.augment.zoom"),
        ("data.batch_size=true", "data.batch_size"),
        ("model=3", "model"),
    ],
)
def test_bad_values_name_the_key(override, named):
    with pytest.raises(ConfigError, match=rf"{named.replace('.', '[.]')}"):
        load_config(None, [override])


def test_malformed_override():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["epochs"])


def test_yaml_file_and_digest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 4\n")
    config = load_config(path, ["train.seed=1"])
    assert (config.train.epochs, config.train.seed) == (4, 1)
    assert config.digest() == load_config(path, ["train.seed=1"]).digest()
    assert config.digest() != load_config(path, ["train.seed=2"]).digest()
    round_trip = tmp_path / "resolved.yaml"
    round_trip.write_text(config.to_yaml())
    assert load_config(round_trip) == config


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
