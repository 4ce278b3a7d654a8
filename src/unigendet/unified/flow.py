"""Rectified flow: the one time convention of this project.

    t = 0 is a clean image, t = 1 is pure noise.
    x_t = (1 - t) * x0 + t * eps          (interpolate)
    v   = eps - x0                         (target_velocity; dx_t/dt)
    loss = || v_pred - v ||^2              (losses.flow_sq_error, summed; normalised by the count)
    t ~ sigmoid(N(0, 1)), then optionally shifted: t <- s*t / (1 + (s-1)*t)
    sampling: Euler from t = 1 down to 0, x <- x - v * dt with dt > 0.

A shift s > 1 spends more time near t = 1 (noisy), as high resolutions need.
Everything here is a pure function of tensors; the network is only called
through the `velocity` callback handed to `euler_sample`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def shift_t(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Time shift t -> s*t / (1 + (s-1)*t); s = 1 is the identity."""
    return shift * t / (1 + (shift - 1) * t)


def sample_t(n: int, shift: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal training times: sigmoid(N(0, 1)), then shifted."""
    return shift_t(torch.sigmoid(torch.randn(n, generator=generator)), shift)


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps; t broadcasts from the leading dimension."""
    t = _bcast(t, x0)
    return (1 - t) * x0 + t * eps


def target_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return eps - x0


def timesteps(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 decreasing times from 1 to 0 on a shifted linspace."""
    return shift_t(torch.linspace(1.0, 0.0, steps + 1), shift)


@dataclass(frozen=True)
class Guidance:
    """Text classifier-free guidance.

    scale: v = v_u + scale * (v_c - v_u); 1.0 disables guidance.
    interval: guidance applies only while interval[0] < t <= interval[1]
    (BAGEL's inferencer uses (0.4, 1.0): no guidance on the last, fine steps).
    renorm_min: if set, rescale the guided velocity so its norm does not exceed
    the conditional one, with the factor clamped to [renorm_min, 1] ("global"
    renormalisation over the whole latent, as BAGEL).
    """

    scale: float = 4.0
    interval: tuple[float, float] = (0.4, 1.0)
    renorm_min: float | None = 0.0

    def active(self, t: float) -> bool:
        return self.scale != 1.0 and self.interval[0] < t <= self.interval[1]


def guide(v_cond: torch.Tensor, v_uncond: torch.Tensor, g: Guidance) -> torch.Tensor:
    v = v_uncond + g.scale * (v_cond - v_uncond)
    if g.renorm_min is not None:
        dims = tuple(range(1, v.ndim))
        norm_c = torch.linalg.vector_norm(v_cond, dim=dims, keepdim=True)
        ratio = norm_c / torch.linalg.vector_norm(v, dim=dims, keepdim=True).clamp_min(1e-12)
        v = v * ratio.clamp(g.renorm_min, 1.0)
    return v


VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]


def euler_sample(
    velocity: VelocityFn,
    noise: torch.Tensor,
    steps: int = 50,
    shift: float = 3.0,
    guidance: Guidance | None = None,
    uncond_velocity: VelocityFn | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = v from t = 1 (noise) to t = 0 (data) with Euler steps."""
    ts = timesteps(steps, shift).tolist()
    x = noise
    for t, t_next in zip(ts[:-1], ts[1:]):
        v = velocity(x, t)
        if guidance is not None and uncond_velocity is not None and guidance.active(t):
            v = guide(v, uncond_velocity(x, t), guidance)
        x = x - v * (t - t_next)
    return x


def _bcast(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        return torch.as_tensor(t, dtype=like.dtype, device=like.device)
    t = t.to(like.dtype)
    return t.reshape(t.shape + (1,) * (like.ndim - t.ndim))
