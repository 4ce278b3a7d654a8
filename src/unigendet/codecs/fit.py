"""Training the project's small convolutional autoencoder (a codec and a fake generator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def train_autoencoder(codec, images: torch.Tensor, steps: int = 200, batch_size: int = 16, crop: int = 48,
                      lr: float = 2e-3, seed: int = 0) -> list[float]:
    """L1 reconstruction on random crops of `images` (N, 3, H, W) in [-1, 1].

    Afterwards the latent `shift`/`scale` buffers are set so encoded latents have
    zero mean and unit variance on these images. Returns the loss per step.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(codec.parameters(), lr=lr)
    n, _, H, W = images.shape
    losses = []
    codec.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=g)
        ys = torch.randint(0, H - crop + 1, (batch_size,), generator=g)
        xs = torch.randint(0, W - crop + 1, (batch_size,), generator=g)
        x = torch.stack([images[i, :, y:y + crop, x_:x_ + crop] for i, y, x_ in zip(idx, ys, xs)])
        loss = F.l1_loss(codec.decoder(codec.encoder(x)), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    codec.eval()
    with torch.no_grad():
        z = codec.encoder(images[: min(n, 64)])
        codec.shift.fill_(z.mean().item())
        codec.scale.fill_(1.0 / max(z.std().item(), 1e-6))
    return losses
