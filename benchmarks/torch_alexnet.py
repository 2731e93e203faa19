"""The same AlexNet layers as `emotion_tf.model.alexnet.build_alexnet`, in PyTorch.

Only for benchmarks/vs_pytorch.py. Geometry (padding, first stride, widths), the optional batch
or local response normalisation, dropout and the 0-255 input scaling follow the Keras builder;
'same' padding is TensorFlow's (the extra pixel goes after), so every feature map has the same
size as in Keras and the parameter counts match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emotion_tf.config import ModelConfig
from emotion_tf.model.alexnet import geometry


class SamePad(nn.Module):
    """TensorFlow 'SAME' padding for a kernel/stride, computed from the input size."""

    def __init__(self, kernel: int, stride: int, value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def _amounts(self, size: int) -> tuple[int, int]:
        out = -(-size // self.stride)
        total = max((out - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._amounts(x.shape[-2])
        left, right = self._amounts(x.shape[-1])
        if not (top or bottom or left or right):
            return x
        return F.pad(x, (left, right, top, bottom), value=self.value)


class Rescale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 / 255.0)


def torch_alexnet(config: ModelConfig, num_classes: int) -> nn.Sequential:
    """AlexNet in PyTorch with the Keras builder's layer sizes; outputs logits."""
    geo = geometry(config)

    def units(n: int) -> int:
        return max(4, round(n * config.width))

    layers: list[nn.Module] = [Rescale()]
    channels = config.channels

    def conv(filters: int, kernel: int, stride: int = 1, padding: str = "same") -> None:
        nonlocal channels
        filters = units(filters)
        if padding == "same":
            layers.append(SamePad(kernel, stride))
        layers.append(
            nn.Conv2d(channels, filters, kernel, stride, bias=config.normalization != "batch_norm")
        )
        if config.normalization == "batch_norm":
            layers.append(nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01))
        elif config.normalization == "lrn":
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        layers.append(nn.ReLU(inplace=True))
        channels = filters

    def pool() -> None:
        if geo.padding == "same":
            layers.append(SamePad(3, 2, value=float("-inf")))
        layers.append(nn.MaxPool2d(3, 2))

    conv(96, 11, geo.conv1_stride, geo.padding)
    pool()
    conv(256, 5)
    pool()
    conv(384, 3)
    conv(384, 3)
    conv(256, 3)
    pool()
    features = channels * geo.feature_size * geo.feature_size
    layers += [
        nn.Flatten(),
        nn.Linear(features, units(4096)),
        nn.ReLU(inplace=True),
        nn.Dropout(config.dropout),
        nn.Linear(units(4096), units(4096)),
        nn.ReLU(inplace=True),
        nn.Dropout(config.dropout),
        nn.Linear(units(4096), num_classes),
    ]
    return nn.Sequential(*layers)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
