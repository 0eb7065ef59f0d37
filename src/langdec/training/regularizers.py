"""A Fourier-domain penalty on LoRA updates (the FLeX study's regulariser).

For every LoRA-adapted module the update is dW = (alpha / r) * B @ A, a matrix of
shape (out, in). Its 2-D FFT is taken and frequencies are measured as a radius
in normalised units: each axis folded to [0, 0.5] cycles per sample (fftfreq), the
radius divided by its maximum (sqrt(0.5^2 + 0.5^2)) so it lies in [0, 1]. The
penalty is the energy (squared magnitude) of the components with radius above
`cutoff`, divided by the number of entries (so modules of different shapes weigh
alike), averaged over modules. This is our reading of the paper's "penalise
high-frequency components of the LoRA update"; with `lambda` = 0 it is off.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=64)
def _mask(rows: int, cols: int, cutoff: float, device: str) -> torch.Tensor:
    fy = torch.fft.fftfreq(rows).abs()
    fx = torch.fft.fftfreq(cols).abs()
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / (0.5 * 2**0.5)
    return (radius > cutoff).to(device)


def lora_updates(model) -> list[torch.Tensor]:
    """dW for every active LoRA adapter of a peft model (differentiable)."""
    updates = []
    for module in model.modules():
        lora_a = getattr(module, "lora_A", None)
        lora_b = getattr(module, "lora_B", None)
        if not lora_a or not lora_b or not hasattr(module, "scaling"):
            continue
        for name in lora_a:
            if name in lora_b and name in module.scaling:
                a = lora_a[name].weight
                b = lora_b[name].weight
                updates.append((b @ a) * module.scaling[name])
    return updates


def high_frequency_energy(update: torch.Tensor, cutoff: float) -> torch.Tensor:
    spectrum = torch.fft.fft2(update.float())
    mask = _mask(update.shape[0], update.shape[1], cutoff, str(update.device))
    return (spectrum.abs() ** 2)[mask].sum() / update.numel()


def fourier_penalty(model, cutoff: float) -> torch.Tensor:
    updates = lora_updates(model)
    if not updates:
        raise ValueError("no LoRA adapter found: the Fourier regulariser needs a peft LoRA model")
    return torch.stack([high_frequency_energy(u, cutoff) for u in updates]).mean()
