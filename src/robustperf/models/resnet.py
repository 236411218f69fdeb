"""ResNet-18/50 (He et al. 2016) and PreAct-ResNet-18 (He et al. 2016b) with CIFAR stems.

The CIFAR stem is one 3x3 stride-1 convolution with 64 channels and no max-pool (the form used by Rice et
al. 2020 and the robustness papers' ResNet baselines), so 32x32 inputs keep 32x32 feature maps in stage 1.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustperf.models.base import MODELS, InputShape, make_activation


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN plus shortcut, then act (post-activation)."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.act2 = make_activation(activation)
        self.shortcut = _projection(c_in, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce - 3x3 (stride) - 1x1 expand (x4), post-activation."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.act1 = make_activation(activation)
        self.act2 = make_activation(activation)
        self.act3 = make_activation(activation)
        self.shortcut = _projection(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """BN-act-conv3x3-BN-act-conv3x3; the projection reads the pre-activated input."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.act1 = make_activation(activation)
        self.act2 = make_activation(activation)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != planes:
            self.shortcut = nn.Conv2d(c_in, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + residual


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """Four stages (64, 128, 256, 512 planes; strides 1, 2, 2, 2) after a CIFAR stem."""

    def __init__(self, block: type[BasicBlock | Bottleneck | PreActBlock], layers: tuple[int, ...], *,
                 num_classes: int, in_channels: int, activation: str) -> None:
        super().__init__()
        self.preact = block is PreActBlock
        self.stem = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        # post-activation nets normalise the stem; pre-activation nets do it in the first block
        self.stem_norm = nn.Identity() if self.preact else nn.Sequential(nn.BatchNorm2d(64),
                                                                         make_activation(activation))
        stages: list[nn.Module] = []
        c_in = 64
        for i, (planes, n_blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            for j in range(n_blocks):
                stages.append(block(c_in, planes, (1 if i == 0 else 2) if j == 0 else 1, activation))
                c_in = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.final_norm = nn.Sequential(nn.BatchNorm2d(c_in), make_activation(activation)) if self.preact \
            else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, num_classes)
        out = self.final_norm(self.stages(self.stem_norm(self.stem(x))))
        return self.fc(self.pool(out).flatten(1))


@MODELS.register("resnet18")
def resnet18(*, num_classes: int, input_shape: InputShape, activation: str = "relu") -> nn.Module:
    """ResNet-18 (BasicBlock x [2, 2, 2, 2]) with a CIFAR stem: 11,173,962 parameters for 10 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=input_shape[0],
                  activation=str(activation))


@MODELS.register("resnet50")
def resnet50(*, num_classes: int, input_shape: InputShape, activation: str = "relu") -> nn.Module:
    """ResNet-50 (Bottleneck x [3, 4, 6, 3]) with a CIFAR stem."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=input_shape[0],
                  activation=str(activation))


@MODELS.register("preact_resnet18")
def preact_resnet18(*, num_classes: int, input_shape: InputShape, activation: str = "relu") -> nn.Module:
    """PreAct-ResNet-18 (Rice et al. 2020's robust-overfitting baseline) with a CIFAR stem."""
    return ResNet(PreActBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=input_shape[0],
                  activation=str(activation))
