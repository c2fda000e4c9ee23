"""Cross-Architecture KD's multi-view generator (the paper's Eq. 7): random views of a
preprocessed batch as tensor ops, for the student's training inputs and for noisy evaluation
(:class:`~mmkd.models.distillers.CrossArchDistiller`)."""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

_GREY_RGB = (0.299, 0.587, 0.114)


class MultiViewGenerator(nn.Module):
    """The paper's multi-view generator (Eq. 7) as tensor ops on a preprocessed batch.

    Each sample is transformed with probability ``prob`` (else returned unchanged). A
    transformed sample gets, each with its own random magnitude:

    1. a random resized crop (area fraction in ``crop_scale``, aspect ratio in ``crop_ratio``)
       rotated by an angle in ``[-rotation, rotation]`` degrees, resampled bilinearly back to
       the input size (outside the image: the mean colour);
    2. colour jitter in pixel space: brightness, contrast, saturation factors drawn from
       ``[1 - x, 1 + x]`` (saturation only for 3-channel RGB input);
    3. Gaussian noise of std ``noise_std`` (pixel units, 0..255), then clipping to 0..255;
    4. a patch mask: the image is cut into a ``mask_grid x mask_grid`` grid of cells and each
       cell is set to the mean colour (0 after normalisation) with probability ``mask_ratio``.

    A strength of 0 (or ``None``) switches that transform off. ``mean``/``std`` are the data
    preprocessor's normalisation (pixel = x * std + mean); without them the input is taken as
    pixels. ``last_selected`` (B,) bool holds which samples the last call transformed.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self,
                 prob: float = 0.5,
                 crop_scale: Optional[Sequence[float]] = (0.5, 1.0),
                 crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
                 rotation: float = 15.0,
                 brightness: float = 0.4,
                 contrast: float = 0.4,
                 saturation: float = 0.4,
                 noise_std: float = 10.0,
                 mask_grid: int = 8,
                 mask_ratio: float = 0.25,
                 mean: Optional[Tensor] = None,
                 std: Optional[Tensor] = None):
        super().__init__()
        if not 0 <= prob <= 1:
            raise ValueError(f'MultiViewGenerator: prob must be in [0, 1], got {prob}')
        self.prob = float(prob)
        self.crop_scale = tuple(crop_scale) if crop_scale else None
        self.crop_ratio = tuple(crop_ratio)
        self.rotation = float(rotation or 0)
        self.brightness = float(brightness or 0)
        self.contrast = float(contrast or 0)
        self.saturation = float(saturation or 0)
        self.noise_std = float(noise_std or 0)
        self.mask_grid = int(mask_grid or 0)
        self.mask_ratio = float(mask_ratio or 0)
        # not persistent: the normalisation belongs to the data preprocessor, not the state
        self.register_buffer('mean', None if mean is None else mean.reshape(1, -1, 1, 1).float(),
                             persistent=False)
        self.register_buffer('std', None if std is None else std.reshape(1, -1, 1, 1).float(),
                             persistent=False)
        self.last_selected: Optional[Tensor] = None

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        B = x.shape[0]
        selected = self._rand(B, device=x.device, generator=generator) < self.prob
        self.last_selected = selected
        if not bool(selected.any()):
            return x
        out = self.transform(x, generator)
        return torch.where(selected[:, None, None, None], out, x)

    @staticmethod
    def _rand(*shape, device, generator) -> Tensor:
        return torch.rand(shape, device=device, generator=generator)

    def _uniform(self, low: float, high: float, n: int, x: Tensor, generator) -> Tensor:
        return low + (high - low) * self._rand(n, device=x.device, generator=generator)

    def transform(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Every sample transformed (the random choice per sample is :meth:`forward`'s)."""
        B, C, H, W = x.shape
        dtype = x.dtype
        x = x.float()
        # 1. crop + rotation: one affine resampling per sample (in normalised space, so that
        # grid_sample's zero padding is the mean colour)
        if self.crop_scale or self.rotation:
            cw = ch = x.new_ones(B)
            cx = cy = x.new_zeros(B)
            if self.crop_scale:
                area = self._uniform(*self.crop_scale, B, x, generator)
                log_r = self._uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]),
                                      B, x, generator)
                cw = (area * log_r.exp()).sqrt().clamp(max=1.0)
                ch = (area / log_r.exp()).sqrt().clamp(max=1.0)
                cx = (2 * self._rand(B, device=x.device, generator=generator) - 1) * (1 - cw)
                cy = (2 * self._rand(B, device=x.device, generator=generator) - 1) * (1 - ch)
            angle = self._uniform(-self.rotation, self.rotation, B, x, generator) * math.pi / 180
            cos, sin = angle.cos(), angle.sin()
            theta = torch.stack([torch.stack([cw * cos, -ch * sin, cx], dim=1),
                                 torch.stack([cw * sin, ch * cos, cy], dim=1)], dim=1)
            grid = F.affine_grid(theta, (B, C, H, W), align_corners=False)
            x = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
        # 2. + 3. colour and noise, in pixels
        p = x if self.mean is None else x * self.std + self.mean
        if self.brightness:
            p = p * self._uniform(1 - self.brightness, 1 + self.brightness, B, x,
                                  generator).view(B, 1, 1, 1)
        if self.contrast:
            c = self._uniform(1 - self.contrast, 1 + self.contrast, B, x,
                              generator).view(B, 1, 1, 1)
            m = self._grey(p).mean(dim=(1, 2, 3), keepdim=True)
            p = (p - m) * c + m
        if self.saturation and C == 3:
            s = self._uniform(1 - self.saturation, 1 + self.saturation, B, x,
                              generator).view(B, 1, 1, 1)
            g = self._grey(p)
            p = (p - g) * s + g
        p = p.clamp(0, 255)
        if self.noise_std:
            noise = torch.randn(p.shape, device=p.device, generator=generator)
            p = (p + self.noise_std * noise).clamp(0, 255)
        x = p if self.mean is None else (p - self.mean) / self.std
        # 4. patch mask
        if self.mask_grid and self.mask_ratio:
            g = self.mask_grid
            cells = (self._rand(B, 1, g, g, device=x.device, generator=generator)
                     < self.mask_ratio).float()
            # 0 is the mean colour after normalisation (black for un-normalised input)
            x = x * (1 - F.interpolate(cells, size=(H, W), mode='nearest'))
        return x.to(dtype)

    @staticmethod
    def _grey(p: Tensor) -> Tensor:
        if p.shape[1] == 3:
            w = p.new_tensor(_GREY_RGB).view(1, 3, 1, 1)
            return (p * w).sum(dim=1, keepdim=True)
        return p.mean(dim=1, keepdim=True)
