"""The dispatch-mode FLOP counter: exact against hand counts, under autograd.grad, on meta, CPU SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from robustperf.cost.flops import BACKWARD, FORWARD, FlopCounter, count_flops, forward_flops, meta_copy


def analytic_conv_linear_flops(model: nn.Module, x: torch.Tensor) -> int:
    """2 x MACs of every Conv2d and Linear, from the shapes seen by forward hooks (no FLOP table)."""
    total = 0

    def conv_hook(m: nn.Conv2d, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total += 2 * k * out.numel()

    def linear_hook(m: nn.Linear, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * m.in_features * out.numel()

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 16 * 16, 10),
    )


def test_forward_matches_hand_count_cpu_and_meta() -> None:
    torch.manual_seed(0)
    model = small_cnn().eval()
    x = torch.rand(3, 3, 32, 32)
    expected = analytic_conv_linear_flops(model, x)
    with torch.no_grad():
        counted = count_flops(model, x)
    assert counted.forward == expected and counted.backward == 0
    assert forward_flops(model, (3, 32, 32), batch_size=3) * 3 == expected


def test_input_gradient_under_autograd_grad_is_one_backward_of_activations() -> None:
    # The PGD pattern that crashes the stock FlopCounterMode (pytorch issue 131753).
    model = small_cnn().eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    with FlopCounter() as counter:
        loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
        (grad,) = torch.autograd.grad(loss, x)
    count = counter.result()
    assert grad.shape == x.shape
    # Gradient w.r.t. activations only: backward == forward (one PGD step = 2F).
    assert count.backward == count.forward > 0
    assert all(p.grad is None for p in model.parameters())


def test_weight_gradients_double_the_backward() -> None:
    model = small_cnn().train()
    x = torch.rand(2, 3, 32, 32)
    with FlopCounter() as counter:
        model(x).sum().backward()
    count = counter.result()
    first = 2 * 27 * 8 * 32 * 32 * 2  # first conv's input gradient is not needed (x has no grad)
    assert count.backward == 2 * count.forward - first
    assert {phase for phase, _ in count.by_op} == {FORWARD, BACKWARD}


def test_meta_copy_counts_like_the_real_model_and_leaves_it_alone() -> None:
    model = small_cnn().train()
    before = [p.detach().clone() for p in model.parameters()]
    meta = meta_copy(model)
    assert meta.training and all(p.is_meta for p in meta.parameters())
    x = torch.rand(2, 3, 32, 32)
    real = count_flops(lambda: model(x).sum().backward())
    fake = count_flops(lambda: meta(x.to("meta")).sum().backward())
    assert real.forward == fake.forward and real.backward == fake.backward
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_cpu_sdpa_is_counted_in_a_vit() -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, num_classes=10).eval()
    with torch.no_grad():
        count = count_flops(model, torch.rand(1, 3, 32, 32))
    ops = {op: n for (_, op), n in count.by_op.items()}
    tokens, dim, depth = 65, 192, 12
    attention = depth * 2 * (2 * tokens * tokens * dim)  # QK^T and AV
    assert ops["aten._scaled_dot_product_flash_attention_for_cpu"] == attention
    linear = depth * 2 * tokens * 12 * dim * dim + 2 * dim * 10  # qkv + proj + mlp(4x), head
    assert ops["aten.addmm"] == linear
    assert count.forward == attention + linear + 2 * 48 * dim * 64  # + patch-embedding conv
    # Patch-4 ViTs sit at 131-136 FLOPs per parameter (REFERENCE.md s.3).
    n_params = sum(p.numel() for p in model.parameters())
    assert 131 <= count.forward / n_params <= 137


def test_cpu_sdpa_backward_is_counted() -> None:
    q = torch.rand(2, 4, 16, 8, requires_grad=True)
    count = count_flops(lambda: nn.functional.scaled_dot_product_attention(q, q, q).sum().backward())
    assert count.forward == 2 * 2 * (2 * 4 * 16 * 16 * 8)
    assert count.backward > count.forward


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_grouped_conv_backward_is_one_forward_per_gradient(groups: int) -> None:
    # torch's stock formula counts a grouped conv's weight gradient `groups` times too high.
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=groups)
    x = torch.rand(2, 16, 8, 8, requires_grad=True)
    count = count_flops(lambda: conv(x).sum().backward())
    assert count.forward == 2 * (16 // groups) * 9 * 16 * 8 * 8 * 2
    assert count.backward == 2 * count.forward


def test_counts_under_inference_mode() -> None:
    # inference_mode hands composite ops (aten.linear, aten.conv2d) to the mode undecomposed.
    model = small_cnn().eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = count_flops(model, x).total
    with torch.inference_mode():
        assert count_flops(model, x).total == expected > 0


def test_meta_copy_unwraps_compiled_models() -> None:
    model = small_cnn().eval()
    compiled = torch.compile(model)  # compilation is lazy: nothing is compiled by wrapping
    assert forward_flops(compiled, (3, 32, 32)) == forward_flops(model, (3, 32, 32))
    assert type(meta_copy(compiled)) is nn.Sequential


def test_cpu_sdpa_counted_even_if_torch_table_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Older torch tables have no CPU flash-attention entry (pytorch issue 195460): we add one.
    import robustperf.cost.flops as flops_module

    old_table = {k: v for k, v in flops_module.flop_registry.items() if "for_cpu" not in str(k)}
    monkeypatch.setattr(flops_module, "flop_registry", old_table)
    q = torch.rand(2, 4, 16, 8, requires_grad=True)
    count = count_flops(lambda: nn.functional.scaled_dot_product_attention(q, q, q).sum().backward())
    assert count.forward == 2 * 2 * (2 * 4 * 16 * 16 * 8)
    assert count.backward > 0
