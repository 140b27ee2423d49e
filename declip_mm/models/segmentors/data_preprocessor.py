"""Segmentation data preprocessor that allows test batches of differently sized images."""
from typing import Any, Dict

import torch
import torch.nn.functional as F
from mmseg.models.data_preprocessor import SegDataPreProcessor

from declip_mm.registry import MODELS, SEG_MODELS, register_everywhere


@register_everywhere(MODELS, SEG_MODELS)
class OVSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` whose **test** path pads a batch of different sizes (bottom/right) instead of asserting.

    Each sample's ``img_shape`` (the valid region) and ``padding_size`` are recorded; ground truth is left untouched
    (it stays at the original size for evaluation).  Training is unchanged (``size`` crop-padding, GT pad 255).
    """

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        if training:
            return super().forward(data, training=True)
        data = self.cast_data(data)
        inputs = data['inputs']
        data_samples = data.get('data_samples', None)
        if self.channel_conversion and inputs[0].size(0) == 3:
            inputs = [x[[2, 1, 0], ...] for x in inputs]
        inputs = [x.float() for x in inputs]
        if self._enable_normalize:
            inputs = [(x - self.mean) / self.std for x in inputs]
        H = max(x.shape[-2] for x in inputs)
        W = max(x.shape[-1] for x in inputs)
        out = []
        for i, x in enumerate(inputs):
            pad = (0, W - x.shape[-1], 0, H - x.shape[-2])
            out.append(F.pad(x, pad, value=self.pad_val) if any(pad) else x)
            if data_samples is not None:
                data_samples[i].set_metainfo(dict(img_shape=tuple(x.shape[-2:]), pad_shape=(H, W),
                                                  padding_size=list(pad)))
        return dict(inputs=torch.stack(out, dim=0), data_samples=data_samples)
