"""Full-reference quality metrics on 0-255 RGB, as the restoration literature reports them."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels (arrays in 0-``peak`` units)."""
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    if error == 0:
        return float("inf")
    return float(10.0 * np.log10(peak**2 / error))


def ssim(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5), averaged over RGB channels."""

    def as_tensor(array: np.ndarray) -> torch.Tensor:
        data = array.astype(np.float64)
        if data.ndim == 2:
            data = data[..., None]
        return torch.from_numpy(data.transpose(2, 0, 1)).unsqueeze(1)

    x, y = as_tensor(reference), as_tensor(test)
    axis = torch.arange(11, dtype=torch.float64) - 5
    line = torch.exp(-(axis**2) / (2 * 1.5**2))
    line = line / line.sum()
    rows, cols = line.view(1, 1, 11, 1), line.view(1, 1, 1, 11)

    def window(data: torch.Tensor) -> torch.Tensor:  # the 2-D Gaussian is separable: two 1-D passes, 5x cheaper
        return F.conv2d(F.conv2d(data, rows), cols)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_x, mu_y = window(x), window(y)
    var_x = window(x * x) - mu_x**2
    var_y = window(y * y) - mu_y**2
    cov = window(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())
