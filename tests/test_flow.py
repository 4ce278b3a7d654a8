"""The time convention (t = 0 data, t = 1 noise)."""

import pytest
import torch

from unigendet.unified import flow
from unigendet.unified.losses import flow_sq_error


def test_interpolate_endpoints():
    x0, eps = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(flow.interpolate(x0, eps, torch.zeros(3)), x0)
    torch.testing.assert_close(flow.interpolate(x0, eps, torch.ones(3)), eps)
    mid = flow.interpolate(x0, eps, torch.tensor([0.25, 0.5, 0.75]))
    torch.testing.assert_close(mid[1], 0.5 * (x0[1] + eps[1]))


def test_target_velocity_is_time_derivative():
    x0, eps = torch.randn(2, 8), torch.randn(2, 8)
    dt = 1e-3
    t = torch.full((2,), 0.3)
    numeric = (flow.interpolate(x0, eps, t + dt) - flow.interpolate(x0, eps, t)) / dt
    torch.testing.assert_close(numeric, flow.target_velocity(x0, eps), atol=1e-3, rtol=1e-3)


def test_flow_loss_is_squared_velocity_error():
    x0, eps = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    v = flow.target_velocity(x0, eps)
    assert float(flow_sq_error(v, v)) == 0.0  # zero at the exact velocity
    v_pred = v + 0.5
    torch.testing.assert_close(flow_sq_error(v_pred, v) / v.numel(), torch.tensor(0.25))  # the MSE per element


@pytest.mark.parametrize("steps,shift", [(1, 1.0), (7, 3.0), (50, 3.0)])
def test_euler_with_exact_velocity_lands_on_data(steps, shift):
    x0, eps = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    out = flow.euler_sample(lambda x, t: flow.target_velocity(x0, eps), eps, steps=steps, shift=shift)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def test_timesteps_and_shift():
    ts = flow.timesteps(10, shift=3.0)
    assert ts[0] == 1 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    t = torch.linspace(0, 1, 11)
    torch.testing.assert_close(flow.shift_t(t, 1.0), t)
    assert (flow.shift_t(t[1:-1], 3.0) > t[1:-1]).all()  # a shift > 1 moves towards noise
    s = flow.sample_t(10_000, generator=torch.Generator().manual_seed(0))
    assert s.min() > 0 and s.max() < 1 and abs(s.median() - 0.5) < 0.02


def test_guidance_combination_renorm_and_interval():
    vc, vu = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    plain = flow.guide(vc, vu, flow.Guidance(scale=4.0, renorm_min=None))
    torch.testing.assert_close(plain, vu + 4 * (vc - vu))
    renormed = flow.guide(vc, vu, flow.Guidance(scale=4.0, renorm_min=0.0))
    norms = torch.linalg.vector_norm(renormed, dim=(1, 2, 3))
    assert (norms <= torch.linalg.vector_norm(vc, dim=(1, 2, 3)) + 1e-5).all()
    g = flow.Guidance(scale=4.0, interval=(0.2, 0.8))
    assert g.active(0.5) and g.active(0.8) and not g.active(0.2) and not g.active(0.9)
    assert not flow.Guidance(scale=1.0).active(0.5)
    calls = []
    flow.euler_sample(lambda x, t: vc, vu, steps=4, shift=1.0, guidance=g,
                      uncond_velocity=lambda x, t: calls.append(t) or vu)
    assert calls == [0.75, 0.5, 0.25]  # t = 1.0 falls outside (0.2, 0.8]
