"""Data preprocessor for the three DeCLIP image streams (student image, teacher crops, VFM image)."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from declip_mm.registry import MODELS


def _stack(x):
    """Stack a list of equally-shaped tensors; keep a list when the shapes differ (e.g. per-image regions)."""
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, torch.Tensor) for t in x):
        if all(t.shape == x[0].shape for t in x):
            return torch.stack(list(x))
        return list(x)
    return x


def _normalise(x, mean, std):
    if isinstance(x, list):
        return [(t.float() - mean) / std for t in x]
    return (x.float() - mean) / std


@MODELS.register_module()
class DeCLIPDataPreprocessor(BaseDataPreprocessor):
    """Moves the batch to the device, stacks it, converts uint8 -> float and normalises each stream.

    Args:
        mean / std: 0-255 RGB statistics of the student/teacher CLIP (student image and crops); ``None`` -> filled
            by the distiller from the student backbone.
        vfm_mean / vfm_std: the VFM's own statistics; ``None`` -> filled from the VFM teacher.

    Input ``data['inputs']``: dict with ``student`` (B, 3, H, W), ``crops`` (B, K, 3, S, S), ``vfm`` (B, 3, h, w)
    uint8 and ``boxes`` (B, K, 5) (stacked tensors from ``default_collate`` or lists from ``pseudo_collate``).
    Output: the same keys as float32 tensors (boxes untouched), plus ``data_samples`` passed through.
    """

    def __init__(self, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 vfm_mean: Optional[Sequence[float]] = None, vfm_std: Optional[Sequence[float]] = None,
                 non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)
        self._configured = dict(student=mean is not None, vfm=vfm_mean is not None)
        self.register_buffer('mean', torch.tensor(mean if mean is not None else (0., 0., 0.)).view(3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std if std is not None else (1., 1., 1.)).view(3, 1, 1), False)
        self.register_buffer('vfm_mean', torch.tensor(vfm_mean if vfm_mean is not None else (0., 0., 0.)).view(
            3, 1, 1), False)
        self.register_buffer('vfm_std', torch.tensor(vfm_std if vfm_std is not None else (1., 1., 1.)).view(
            3, 1, 1), False)

    def set_default_norm(self, mean=None, std=None, vfm_mean=None, vfm_std=None) -> None:
        """Fill the statistics not given in the config (called by the distiller after building its models)."""
        if not self._configured['student'] and mean is not None:
            self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1))
            self.std.copy_(torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1))
        if not self._configured['vfm'] and vfm_mean is not None:
            self.vfm_mean.copy_(torch.as_tensor(vfm_mean, dtype=torch.float32).view(3, 1, 1))
            self.vfm_std.copy_(torch.as_tensor(vfm_std, dtype=torch.float32).view(3, 1, 1))

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = dict(data['inputs'])
        out = {}
        for key, value in inputs.items():
            value = _stack(value)
            if key in ('student', 'crops', 'image'):
                value = _normalise(value, self.mean, self.std)
            elif key == 'vfm':
                value = _normalise(value, self.vfm_mean, self.vfm_std)
            elif isinstance(value, torch.Tensor) and value.is_floating_point():
                value = value.float()
            out[key] = value
        return dict(inputs=out, data_samples=data.get('data_samples'))
