"""Models: shapes, parameter counts, kwargs checking, normalisation inside the model, timm adapter."""

from __future__ import annotations

import pytest
import torch

from robustperf.models import MODELS, ModelError, NormalizedModel, count_parameters, create_model
from robustperf.registry import RegistryError

# the small end of each family, so every model is exercised on CPU in well under a second
SMALL = {
    "tiny_mlp": {"width": 8},
    "tiny_cnn": {"width": 4},
    "ensemble": {"member": "tiny_cnn", "members": 2, "width": 4},
    "wide_resnet": {"depth": 10, "width": 1},
    "resnet18": {},
    "resnet50": {},
    "preact_resnet18": {},
    "timm": {"model_name": "resnet10t"},
}


def test_every_registered_model_is_covered() -> None:
    assert set(MODELS.names()) == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_shape_and_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, input_shape=(3, 16, 16), **SMALL[name])
    x = torch.rand(2, 3, 16, 16)
    out = model(x)
    assert out.shape == (2, 7)
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_wrn_28_10_has_the_published_parameter_count() -> None:
    # Zagoruyko & Komodakis 2016 / REFERENCE.md section 3 (36.48M): WRN-28-10, 10 classes, 36,479,194 parameters
    with torch.device("meta"):
        model = create_model("wide_resnet", num_classes=10, depth=28, width=10)
    assert count_parameters(model) == 36_479_194


def test_wrn_28_10_forward_flops_match_reference() -> None:
    # REFERENCE.md section 3: WRN-28-10 costs 10.49 GFLOPs per 32x32 image (counted on the meta device: free)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = create_model("wide_resnet", num_classes=10, depth=28, width=10).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.rand(1, 3, 32, 32))
    assert abs(counter.get_total_flops() / 10.49e9 - 1) < 1e-3


def test_resnet18_cifar_parameter_count() -> None:
    with torch.device("meta"):
        model = create_model("resnet18", num_classes=10)
    assert count_parameters(model) == 11_173_962  # CIFAR ResNet-18 (3x3 stem, no max-pool)


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_wide_resnet_activations_and_any_input_size(activation: str) -> None:
    model = create_model("wide_resnet", num_classes=3, input_shape=(1, 8, 8), depth=10, width=1,
                         activation=activation)
    acts = {type(m).__name__ for m in model.modules()}
    assert {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU"}[activation] in acts
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    assert model(torch.rand(2, 1, 40, 40)).shape == (2, 3)


def test_bad_wrn_depth_and_activation_are_errors() -> None:
    with pytest.raises(ModelError, match="6n\\+4"):
        create_model("wide_resnet", num_classes=10, depth=27, width=1)
    with pytest.raises(ModelError, match="activation 'tanh'"):
        create_model("wide_resnet", num_classes=10, depth=10, width=1, activation="tanh")


def test_unknown_kwarg_names_the_model_and_accepted_kwargs() -> None:
    with pytest.raises(ModelError) as err:
        create_model("wide_resnet", num_classes=10, detph=28)
    msg = str(err.value)
    assert "'wide_resnet'" in msg and "'detph'" in msg and "depth" in msg and "activation" in msg


def test_unknown_model_lists_alternatives() -> None:
    with pytest.raises(RegistryError, match="wide_resnet"):
        create_model("wide_resnt", num_classes=10)


def test_normalisation_is_inside_the_model() -> None:
    torch.manual_seed(0)
    plain = create_model("tiny_mlp", num_classes=4, input_shape=(2, 4, 4), width=8)
    normed = create_model("tiny_mlp", num_classes=4, input_shape=(2, 4, 4), width=8, mean=(0.5, 0.25),
                          std=(0.2, 0.4))
    normed.net.load_state_dict(plain.net.state_dict())
    x = torch.rand(3, 2, 4, 4)
    mean = torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)
    std = torch.tensor([0.2, 0.4]).view(1, 2, 1, 1)
    torch.testing.assert_close(normed(x), plain((x - mean) / std))
    # the statistics are buffers (saved with the weights) and not parameters
    assert "mean" in normed.state_dict() and count_parameters(normed) == count_parameters(plain)


def test_state_dict_keys_do_not_depend_on_mean_std() -> None:
    a = create_model("tiny_cnn", num_classes=10, input_shape=(3, 8, 8), mean=(0.5,) * 3, std=(0.2,) * 3)
    b = create_model("tiny_cnn", num_classes=10, input_shape=(3, 8, 8))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.std.flatten(), torch.full((3,), 0.2))


def test_mean_with_wrong_channel_count_is_an_error() -> None:
    with pytest.raises(ModelError, match="3 channels"):
        create_model("tiny_mlp", num_classes=2, input_shape=(3, 4, 4), mean=(0.1, 0.2))


def test_timm_prefix_and_vit_input_size() -> None:
    model = create_model("timm/vit_tiny_patch16_224", num_classes=5, input_shape=(3, 32, 32))
    assert isinstance(model, NormalizedModel)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_timm_vit_patch_size_sets_the_token_grid() -> None:
    model = create_model("timm/vit_tiny_patch16_224", num_classes=10, input_shape=(3, 32, 32), patch_size=4)
    assert tuple(model.net.patch_embed.grid_size) == (8, 8)  # 64 tokens, not the 2x2 of 16-pixel patches
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ModelError, match="takes no patch_size"):
        create_model("timm/resnet18", num_classes=10, input_shape=(3, 32, 32), patch_size=4)


def test_timm_grey_inputs_resize_and_checkpoint(tmp_path) -> None:
    # a 3-channel 224px ViT fed 1-channel 8x8 digits: the wrapper repeats the channel and resizes
    from robustperf.models.base import Built
    from robustperf.models.timm_adapter import timm_model

    built = timm_model(num_classes=3, input_shape=(3, 32, 32), model_name="resnet10t")
    assert isinstance(built, Built) and built.resize_to is None
    ckpt = tmp_path / "w.pth"
    torch.save({"state_dict": built.net.state_dict()}, ckpt)
    model = create_model("timm", num_classes=3, input_shape=(3, 32, 32), model_name="resnet10t",
                         checkpoint_path=str(ckpt))
    x = torch.rand(2, 3, 32, 32)
    built.net.eval()
    model.eval()
    torch.testing.assert_close(model(x), built.net(x))
    # an RGB checkpoint used on grey 8x8 digits: the wrapper repeats the grey channel
    grey = create_model("timm", num_classes=3, input_shape=(1, 8, 8), model_name="resnet10t",
                        checkpoint_path=str(ckpt)).eval()
    g = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(grey(g), built.net(g.expand(-1, 3, -1, -1)))


def test_vit_checkpoint_keeps_its_resolution_and_inputs_are_resized(tmp_path) -> None:
    from robustperf.models.timm_adapter import timm_model

    built = timm_model(num_classes=3, input_shape=(3, 64, 64), model_name="vit_tiny_patch16_224", img_size=64)
    ckpt = tmp_path / "vit.pth"
    torch.save(built.net.state_dict(), ckpt)
    model = create_model("timm/vit_tiny_patch16_224", num_classes=3, input_shape=(3, 32, 32),
                         checkpoint_path=str(ckpt), img_size=64).eval()
    assert model.resize_to == (64, 64)
    x = torch.rand(1, 3, 32, 32)
    up = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model(x), built.net.eval()(up))


def test_timm_refuses_hub_downloads_and_unknown_names() -> None:
    with pytest.raises(ModelError, match="checkpoint_path"):
        create_model("timm/resnet10t", num_classes=3, pretrained=True)
    with pytest.raises(ModelError, match="no model"):
        create_model("timm/not_a_model_xyz", num_classes=3)
    with pytest.raises(ModelError, match="does not exist"):
        create_model("timm/resnet10t", num_classes=3, checkpoint_path="/nonexistent/w.pth")
