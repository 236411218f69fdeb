"""FAB-T and FAB: the box-constrained hyperplane projection, the attack contract, agreement with the reference."""

from __future__ import annotations

import pytest
import torch

from robustperf.attacks import create_attack
from robustperf.attacks.base import AttackConfigError
from robustperf.attacks.fab import project_hyperplane_box


def _problem(rows: int = 64, dim: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(rows, dim, generator=g)
    w = torch.randn(rows, dim, generator=g)
    w[:, :5] = 0.0  # coordinates the hyperplane ignores must not move
    b = (w * torch.rand(rows, dim, generator=g)).sum(1)  # <w, z> = b for some z in the box
    b[::4] = w[::4].clamp(min=0).sum(1) + 1.0  # beyond max_z <w, z> over the box: out of reach
    return p, w, b


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_reaches_hyperplane_inside_box(norm: str) -> None:
    p, w, b = _problem()
    d = project_hyperplane_box(p, w, b, norm)
    z = p + d
    assert (z >= -1e-6).all() and (z <= 1 + 1e-6).all()
    assert (d[:, :5] == 0).all()
    # reachable hyperplanes are reached; unreachable ones get the box corner closest to them
    corner = torch.where((w * torch.sign((w * p).sum(1) - b)[:, None]) > 0, 0.0, 1.0)
    corner = torch.where(w == 0, p, corner)
    reachable = torch.sign((w * corner).sum(1) - b) != torch.sign((w * p).sum(1) - b)
    assert reachable.any() and (~reachable).any()
    residual = ((w * z).sum(1) - b).abs()
    assert (residual[reachable] < 1e-4).all()
    assert torch.allclose(z[~reachable], corner[~reachable], atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_is_minimal_against_random_feasible_points(norm: str) -> None:
    """No point of the hyperplane inside the box found by random search is closer than the projection."""
    p, w, b = _problem(rows=8, dim=6, seed=1)
    d = project_hyperplane_box(p, w, b, norm)
    dist = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    g = torch.Generator().manual_seed(2)
    for r in range(8):
        cand = torch.rand(20000, 6, generator=g)
        # move each candidate onto the hyperplane along the largest |w| coordinate, keep those in the box
        k = int(w[r].abs().argmax())
        cand[:, k] += (b[r] - cand @ w[r]) / w[r, k]
        ok = (cand >= 0).all(1) & (cand <= 1).all(1)
        if not ok.any():
            continue
        dc = cand[ok] - p[r]
        best = (dc.abs().amax(1) if norm == "linf" else dc.norm(dim=1)).min()
        assert dist[r] <= best + 1e-4


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_matches_reference(norm: str) -> None:
    fp = pytest.importorskip("pyautoattack.fab_projections")
    p, w, b = _problem(rows=128, dim=300, seed=3)
    ref = fp.projection_linf if norm == "linf" else fp.projection_l2
    d = project_hyperplane_box(p, w, b, norm)
    assert torch.allclose(d, ref(p, w.clone(), b.clone()), atol=1e-4)


@pytest.mark.parametrize(("name", "norm", "eps"), [("fab-t", "linf", 0.1), ("fab-t", "l2", 0.8), ("fab", "linf", 0.1)])
def test_contract_ball_box_success_and_seed(digits_mlp, name: str, norm: str, eps: float) -> None:
    model, x, y = digits_mlp
    x, y = x[:120], y[:120]
    params = {"n_iter": 30, "n_restarts": 2} if name == "fab" else {"n_iter": 30}
    res = create_attack(name, eps=eps, norm=norm, seed=1, **params).perturb(model, x, y)
    d = (res.x_adv - x).flatten(1)
    dist = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (dist <= eps + 1e-6).all()
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    with torch.no_grad():
        pred_adv, pred_clean = model(res.x_adv).argmax(1), model(x).argmax(1)
    assert torch.equal(res.success, pred_adv != y)  # success is the model's verdict at x_adv
    assert (res.success >= (pred_clean != y)).all()  # robust accuracy <= clean accuracy
    assert 0 < res.success.float().mean() < 1
    again = create_attack(name, eps=eps, norm=norm, seed=1, **params).perturb(model, x, y)
    assert torch.equal(again.x_adv, res.x_adv)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_agrees_with_reference(digits_mlp, norm: str) -> None:
    fab_pt = pytest.importorskip("pyautoattack.fab_pt")
    model, x, y = digits_mlp
    x, y = x[:150], y[:150]
    eps = 0.1 if norm == "linf" else 0.8
    ref = fab_pt.FABAttack_PT(model, norm={"linf": "Linf", "l2": "L2"}[norm], n_restarts=1, n_iter=100, eps=eps,
                              seed=0, targeted=True, n_target_classes=9)  # fmt: skip
    adv = ref.perturb(x, y)
    d = (adv - x).flatten(1)
    with torch.no_grad():
        robust_ref = (model(adv).argmax(1) == y) | ((d.abs().amax(1) if norm == "linf" else d.norm(dim=1)) > eps)
    res = create_attack("fab-t", eps=eps, norm=norm).perturb(model, x, y)
    agree = (res.robust == robust_ref).float().mean().item()
    assert agree >= 0.99
    assert 0 < robust_ref.float().mean() < 1


def test_max_rows_does_not_change_the_verdict(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:60], y[:60]
    small = create_attack("fab-t", eps=0.1, n_iter=20, max_rows=7).perturb(model, x, y)
    wide = create_attack("fab-t", eps=0.1, n_iter=20, max_rows=60 * 9).perturb(model, x, y)
    assert torch.equal(small.success, wide.success)


def test_bf16_search_keeps_fp32_verdicts(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:80], y[:80]
    res = create_attack("fab-t", eps=0.1, n_iter=30, search_dtype="bf16").perturb(model, x, y)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)
    fp32 = create_attack("fab-t", eps=0.1, n_iter=30).perturb(model, x, y)
    assert abs(res.success.float().mean() - fp32.success.float().mean()) <= 0.05


def test_bad_parameters_are_rejected_at_construction() -> None:
    with pytest.raises(AttackConfigError, match="n_iter"):
        create_attack("fab-t", n_iter=0)
    with pytest.raises(AttackConfigError, match="beta"):
        create_attack("fab-t", beta=1.5)
    with pytest.raises(AttackConfigError, match="accepted parameters"):
        create_attack("fab-t", n_steps=3)
