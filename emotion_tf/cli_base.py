"""The one error boundary of the command line: click classes every command is built with.

A command raises the typed errors of `emotion_tf.errors`; `Command` and `Group` turn each into
one line `error: ...` on stderr and exit status 2, for every command and sub-command. A missing
TensorFlow (installed without the `cpu` or `gpu` extra) gets one line saying what to install.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click

from emotion_tf import tf_startup
from emotion_tf.errors import DataError, EmotionTFError, ModelDirError

# TensorFlow's C++ start-up chatter is kept out of the output by `import emotion_tf`
# (tf_startup.quiet_by_default), so that an error stays one line; `emotion-tf -v` shows it.
TF_LOG_LEVEL_SET_BY_USER = tf_startup.TF_LOG_LEVEL_SET_BY_USER


def show_tensorflow_log() -> None:
    """Let TensorFlow's own C++ log through (for -v), unless the user chose a level."""
    if not TF_LOG_LEVEL_SET_BY_USER:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        tf_startup.uninstall()


EXIT_USAGE = 2  # like click's usage errors: the input, not the program, is at fault
MISSING_TENSORFLOW = (
    "TensorFlow is not installed: pip install 'emotion-tf[cpu]' (or 'emotion-tf[gpu]' for an "
    "NVIDIA GPU); from a checkout: pip install -e '.[cpu]'"
)


def one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message keeps its first line)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Turn typed errors and a missing TensorFlow into one line on stderr and exit status 2."""
    try:
        yield
    except EmotionTFError as err:
        click.echo(f"error: {one_line(err)}", err=True)
        sys.exit(EXIT_USAGE)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "tensorflow":
            raise
        click.echo(f"error: {MISSING_TENSORFLOW}", err=True)
        sys.exit(EXIT_USAGE)


class Command(click.Command):
    """A click command whose typed errors become one line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        with error_boundary():
            return super().invoke(ctx)


class Group(click.Group):
    """A click group whose commands and sub-groups all run inside the error boundary."""

    command_class = Command
    group_class = type  # sub-groups made with @group.group() are `Group`s too

    def invoke(self, ctx: click.Context) -> Any:
        with error_boundary():
            return super().invoke(ctx)


command = functools.partial(click.command, cls=Command)
group = functools.partial(click.group, cls=Group)


MODEL_HELP = (
    "The model: a run directory, an export (base or version folder), a .tflite file or a "
    "packaged .npz. Default: the happy/sad model packaged with emotion-tf."
)


def model_option(func: Callable, help: str = MODEL_HELP) -> Callable:
    """`--model/-m MODEL`, the same on every command that runs a model (default: packaged)."""
    return click.option(
        "--model",
        "-m",
        "model",
        default=None,
        metavar="MODEL",
        help=help,
        callback=_existing_model,
    )(func)


def _existing_model(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A named model that does not exist fails while the command line is read, before the
    command imports TensorFlow (seconds), with the one line `open_model` would give."""
    if value is not None and not os.path.exists(value):
        raise ModelDirError(f"model path not found: {value}")
    return value


def existing_data_dir(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A data folder that does not exist fails before TensorFlow is imported."""
    if not os.path.isdir(value):
        raise DataError(f"data folder not found: {value}")
    return value


TRUST_MODEL_HELP = (
    "Run the export even if its graph uses ops outside the allow-list (file, network, Python "
    "ops); only for exports you trust."
)


def trust_model_option(func: Callable) -> Callable:
    """`--trust-model`, the same on every command that runs a model."""
    return click.option("--trust-model", is_flag=True, help=TRUST_MODEL_HELP)(func)


@contextlib.contextmanager
def progress(items: Iterable[Any], length: int, label: str) -> Iterator[Iterable[Any]]:
    """`items` with a progress bar on stderr when it is a terminal and there is more than one;
    the items unchanged otherwise (pipes and logs get no bar)."""
    if length < 2 or not sys.stderr.isatty():
        yield items
        return
    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield bar
