"""Feature extractors for FID: Inception-v3 pool3 with the standard weights, and a digits domain classifier.

FID is only comparable between numbers computed with the same extractor, so every extractor has a `name`
that goes into every statistic and result (`robustperf.data.fid`), and mixing two names is an error.

- ``inception-v3-pool3``: the 2048-d pool3 features of the TensorFlow Inception-v3 graph from 2015-12-05
  that the FID paper (Heusel et al. 2017) used, as ported to PyTorch by pytorch-fid. The architecture is
  torchvision's Inception-v3 with the four block variants that differ from it in that graph (average pools
  that exclude the padding, a max pool in the last block's pool branch); inputs are resized bilinearly to
  299 x 299 and mapped to [-1, 1], as pytorch-fid does. The weights cannot be downloaded here: the loader
  names the file, where it must be and its hash.
- ``digits-cnn``: for 8x8 digits Inception features are meaningless (papers on MNIST FID train a domain
  classifier instead); a small CNN trained on the real digits training split, cached on disk, whose name
  carries a hash of its weights so two differently trained extractors never share a name.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustperf.data.datasets import DataError
from robustperf.registry import Registry

log = logging.getLogger(__name__)

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_WEIGHTS_FILE}"
# torch.hub's convention: the 8 hex digits in the file name are the start of the file's sha256
INCEPTION_SHA256_PREFIX = "6726825d"
INCEPTION_SIZE = 299
WEIGHTS_ENV = "ROBUSTPERF_FID_WEIGHTS"
CACHE_ENV = "ROBUSTPERF_CACHE"


def cache_dir(override: str | Path | None = None) -> Path:
    """Where FID statistics and trained extractors are cached: the argument, $ROBUSTPERF_CACHE or ~/.cache/robustperf."""
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get(CACHE_ENV, "~/.cache/robustperf")).expanduser()


class FeatureExtractor(Protocol):
    """Images in [0, 1] (N, C, H, W) -> features (N, d); `name` identifies the extractor and its weights."""

    name: str

    def features(self, images: Tensor, *, batch_size: int = 200) -> np.ndarray: ...


ExtractorFactory = Callable[..., FeatureExtractor]
EXTRACTORS: Registry[ExtractorFactory] = Registry("FID feature extractor")


def _batched(module: nn.Module, images: Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(module(images[start:start + batch_size].to(device)).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


# ---------------------------------------------------------------------------------------------------------
# Inception-v3 pool3 (the FID network)


def inception_weights_path() -> Path:
    """The weights file to use: $ROBUSTPERF_FID_WEIGHTS, else the first existing of the standard places."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    candidates = _inception_candidates()
    return next((p for p in candidates if p.is_file()), candidates[0])


def _inception_candidates() -> list[Path]:
    torch_hub = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE  # where pytorch-fid caches it
    return [cache_dir() / "weights" / INCEPTION_WEIGHTS_FILE, torch_hub]


def _missing_weights_message(path: Path) -> str:
    places = " or ".join(str(p) for p in _inception_candidates())
    return (f"Inception FID needs the pytorch-fid weights file {INCEPTION_WEIGHTS_FILE} (sha256 starts with "
            f"{INCEPTION_SHA256_PREFIX}) and {path} does not exist; download it where a network "
            f"exists from {INCEPTION_WEIGHTS_URL} and copy it to {places}, or set {WEIGHTS_ENV}=/path/to/the/file")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_inception_weights(path: Path) -> Path:
    """`path` if it is the expected weights file, else a DataError that says which file is needed and where."""
    if not path.is_file():
        raise DataError(_missing_weights_message(path))
    digest = _sha256(path)
    if not digest.startswith(INCEPTION_SHA256_PREFIX):
        raise DataError(f"{path} has sha256 {digest[:16]}..., not {INCEPTION_SHA256_PREFIX}...: it is not "
                        f"{INCEPTION_WEIGHTS_FILE}; download that file from {INCEPTION_WEIGHTS_URL}")
    return path


def _fid_inception_blocks() -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]:
    """The four Inception blocks whose pooling differs between the 2015 TF graph and torchvision."""
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    def avg_pool(x: Tensor) -> Tensor:
        # the TF graph averages over the valid pixels only (torchvision counts the zero padding)
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    class BlockA(InceptionA):
        def forward(self, x: Tensor) -> Tensor:
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([b1, b5, b3, self.branch_pool(avg_pool(x))], 1)

    class BlockC(InceptionC):
        def forward(self, x: Tensor) -> Tensor:
            b1 = self.branch1x1(x)
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            b7d = x
            for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                          self.branch7x7dbl_5):
                b7d = layer(b7d)
            return torch.cat([b1, b7, b7d, self.branch_pool(avg_pool(x))], 1)

    class _BlockE(InceptionE):
        def _pool(self, x: Tensor) -> Tensor:
            raise NotImplementedError

        def forward(self, x: Tensor) -> Tensor:
            b1 = self.branch1x1(x)
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
            return torch.cat([b1, b3, bd, self.branch_pool(self._pool(x))], 1)

    class BlockE1(_BlockE):  # Mixed_7b: average pool without the padding
        def _pool(self, x: Tensor) -> Tensor:
            return avg_pool(x)

    class BlockE2(_BlockE):  # Mixed_7c: the TF graph has a max pool here
        def _pool(self, x: Tensor) -> Tensor:
            return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)

    return BlockA, BlockC, BlockE1, BlockE2


class InceptionPool3(nn.Module):
    """Inception-v3 up to the 2048-d global average pool ("pool3"), the FID network.

    Takes images in [0, 1] of any size and 1 or 3 channels (grey is repeated to RGB); resizes to 299 x 299
    bilinearly (align_corners=False) and maps to [-1, 1] before the first convolution.
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        block_a, block_c, block_e1, block_e2 = _fid_inception_blocks()
        # 1008 classes: the TF graph's output layer, so the state dict loads with strict key checking
        net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
        net.Mixed_5b = block_a(192, pool_features=32)
        net.Mixed_5c = block_a(256, pool_features=64)
        net.Mixed_5d = block_a(288, pool_features=64)
        net.Mixed_6b = block_c(768, channels_7x7=128)
        net.Mixed_6c = block_c(768, channels_7x7=160)
        net.Mixed_6d = block_c(768, channels_7x7=160)
        net.Mixed_6e = block_c(768, channels_7x7=192)
        net.Mixed_7b = block_e1(1280)
        net.Mixed_7c = block_e2(2048)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        n = self.net
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))  # (B, 64, 73, 73)
        x = n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)))  # (B, 192, 35, 35)
        for block in (n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d,
                      n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = block(x)  # ... (B, 2048, 8, 8)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 2048)


class InceptionExtractor:
    """pool3 features of `InceptionPool3` with the pytorch-fid weights."""

    name = "inception-v3-pool3"

    def __init__(self, module: InceptionPool3, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

    def features(self, images: Tensor, *, batch_size: int = 200) -> np.ndarray:
        return _batched(self.module, images.float(), batch_size, self.device)


def create_inception(*, weights: str | Path | None = None, device: str | torch.device = "cpu",
                     **_: object) -> InceptionExtractor:
    """The standard FID extractor; `weights` defaults to `inception_weights_path()` and is hash-checked."""
    path = check_inception_weights(Path(weights).expanduser() if weights else inception_weights_path())
    module = InceptionPool3()
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.net.load_state_dict(state, strict=True)
    log.info("loaded Inception FID weights from %s", path)
    return InceptionExtractor(module, device)


# ---------------------------------------------------------------------------------------------------------
# digits domain extractor

DIGITS_CNN_VERSION = "digits-cnn-v1"
DIGITS_FEATURES = 32
DIGITS_EPOCHS = 40
DIGITS_SIZE = 8


class DigitsNet(nn.Module):
    """Small CNN for 8x8 grey digits; `embed` gives the FID features (pre-activation, so full rank)."""

    def __init__(self, n_features: int = DIGITS_FEATURES, n_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 4, 4)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * 16, n_features),
        )
        self.head = nn.Linear(n_features, n_classes)

    def embed(self, x: Tensor) -> Tensor:
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        if tuple(x.shape[-2:]) != (DIGITS_SIZE, DIGITS_SIZE):
            x = F.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", antialias=True,
                              align_corners=False)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.embed(x)))


class _Embed(nn.Module):
    def __init__(self, net: DigitsNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.embed(x)


class DigitsExtractor:
    """Embedding of a `DigitsNet` trained on the real digits; `name` carries a hash of its weights."""

    def __init__(self, net: DigitsNet, name: str, test_accuracy: float) -> None:
        self.net = net.eval()
        self.name = name
        self.test_accuracy = test_accuracy

    def features(self, images: Tensor, *, batch_size: int = 512) -> np.ndarray:
        return _batched(_Embed(self.net), images.float(), batch_size, torch.device("cpu"))


def _weights_hash(net: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(net.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:8]


def train_digits_net(*, seed: int = 0, epochs: int = DIGITS_EPOCHS) -> tuple[DigitsNet, float]:
    """Train `DigitsNet` on the digits training split (Adam, 1 CPU thread, ~10 s); returns it and test accuracy."""
    from robustperf.config import DataConfig
    from robustperf.data.bundle import eval_tensors
    from robustperf.data.sources import load_digits

    source = load_digits(DataConfig(dataset="digits"))
    x, y = eval_tensors(source.train, None)
    x_test, y_test = eval_tensors(source.test, None)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitsNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), 64):
            idx = perm[start:start + 64]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.inference_mode():
        acc = float((net(x_test).argmax(1) == y_test).float().mean())
    return net, acc


def create_digits_cnn(*, cache: str | Path | None = None, retrain: bool = False, **_: object) -> DigitsExtractor:
    """The digits extractor, trained once and cached as ``<cache>/fid/digits-cnn-v1.pt``."""
    path = cache_dir(cache) / "fid" / f"{DIGITS_CNN_VERSION}.pt"
    net = DigitsNet()
    if path.is_file() and not retrain:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(payload["state_dict"])
        acc = float(payload["test_accuracy"])
    else:
        log.info("training the digits FID extractor (cached at %s)", path)
        net, acc = train_digits_net()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": net.state_dict(), "test_accuracy": acc}, tmp)
        os.replace(tmp, path)
    name = f"{DIGITS_CNN_VERSION}-{_weights_hash(net)}"
    log.info("FID extractor %s (digits test accuracy %.3f)", name, acc)
    return DigitsExtractor(net, name, acc)


EXTRACTORS.register("inception-v3-pool3", create_inception)
EXTRACTORS.register("digits-cnn", create_digits_cnn)


def create_extractor(name: str, **kwargs: object) -> FeatureExtractor:
    """Build a registered extractor (``inception-v3-pool3``, ``digits-cnn``)."""
    return EXTRACTORS.get(name)(**kwargs)
