"""WideResNet in its CIFAR form (Zagoruyko & Komodakis 2016, "Wide Residual Networks").

WRN-d-k: a 3x3 stem with 16 channels, then three groups of n = (d - 4) / 6 pre-activation basic blocks
with 16k, 32k and 64k channels (strides 1, 2, 2), a final BN + activation, global average pooling and a
linear head. WRN-28-10 with 10 classes has 36,479,194 parameters and 10.49 GFLOPs per 32x32 image
(REFERENCE.md section 3: 36.48M). The activation is selectable because Debenedetti et al. 2023 and Bartoldson et
al. 2024 compare ReLU, GELU and SiLU. Average pooling is adaptive so any input size works.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustperf.models.base import MODELS, InputShape, ModelError, make_activation


class WideBasic(nn.Module):
    """Pre-activation block: BN-act-conv3x3-BN-act-(dropout)-conv3x3 plus a (1x1 conv) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        # when the shape changes, the projection reads the pre-activated input (as in the original code)
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.act2(self.bn2(out))))
        return out + residual


class WideResNet(nn.Module):
    """WRN-depth-width for small images; see the module docstring."""

    def __init__(self, *, depth: int, width: int, num_classes: int, in_channels: int, activation: str,
                 dropout: float) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ModelError(f"wide_resnet depth must be 6n+4 with n >= 1 (e.g. 16, 28, 34, 70), got {depth}")
        if width < 1:
            raise ModelError(f"wide_resnet width must be >= 1, got {width}")
        n = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for group, stride in enumerate((1, 2, 2)):
            for i in range(n):
                c_in = channels[group] if i == 0 else channels[group + 1]
                blocks.append(WideBasic(c_in, channels[group + 1], stride if i == 0 else 1, activation, dropout))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels[3])
        self.act = make_activation(activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[3], num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, num_classes)
        out = self.act(self.bn(self.blocks(self.stem(x))))
        return self.fc(self.pool(out).flatten(1))


def _init_weights(model: nn.Module) -> None:
    """He-normal convs (fan_out), BN to identity, zero linear bias: the WRN reference initialisation."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


@MODELS.register("wide_resnet")
def wide_resnet(*, num_classes: int, input_shape: InputShape, depth: int = 28, width: int = 10,
                activation: str = "relu", dropout: float = 0.0) -> nn.Module:
    """WideResNet-depth-width (default WRN-28-10) with relu | gelu | silu."""
    return WideResNet(depth=int(depth), width=int(width), num_classes=num_classes, in_channels=input_shape[0],
                      activation=str(activation), dropout=float(dropout))
