"""A neck that chains necks, e.g. mmseg's ``Feature2Pyramid`` (F-ViT's simple pyramid) followed by mmdet's FPN."""
from typing import List, Union

import torch.nn as nn
from mmengine.model import BaseModule

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere


@register_everywhere(DET_MODELS, MODELS)
class SequentialNeck(BaseModule):
    """Apply several necks in order, so a stock two-stage config can use a plain ViT backbone::

        neck=dict(type='SequentialNeck', necks=[
            dict(type='mmseg.Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
            dict(type='FPN', in_channels=[768] * 4, out_channels=256, num_outs=5)])

    ``Feature2Pyramid(rescales=[4, 2, 1, 0.5])`` is F-ViT's pyramid layer for layer (ConvT-norm-GELU-ConvT /
    ConvT / identity / 2x2 max-pool over 4 taps of stride p -> strides p/4, p/2, p, 2p; keys ``upsample_4x.*``,
    ``upsample_2x.*``).  Children are built from mmdet's registry (``mmseg.`` prefixes reach mmseg's).
    """

    def __init__(self, necks: List[Union[dict, nn.Module]], init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not necks:
            raise ValueError('SequentialNeck needs at least one neck')
        from mmdet.registry import MODELS as MMDET_MODELS
        self.necks = nn.ModuleList(n if isinstance(n, nn.Module) else MMDET_MODELS.build(n) for n in necks)

    def forward(self, inputs):
        x = inputs
        for neck in self.necks:
            x = neck(x)
        return x
