"""F-ViT's 4-branch simple pyramid, and a neck that chains necks (pyramid -> FPN)."""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from declip_mm.registry import DET_MODELS, MODELS, SEG_MODELS, register_everywhere


@register_everywhere(DET_MODELS, SEG_MODELS, MODELS)
class FViTSimplePyramid(BaseModule):
    """F-ViT's simple pyramid over 4 ViT taps of stride p (all maps keep ``in_channels`` channels):

    tap 0: ConvT 2x2 s2 -> norm -> GELU -> ConvT 2x2 s2  (stride p/4)
    tap 1: ConvT 2x2 s2                                   (stride p/2)
    tap 2: identity                                       (stride p)
    tap 3: MaxPool 2x2 s2                                 (stride 2p)

    Not ViTDet's SimpleFPN (no extra convs / LayerNorms, one tap per level).  Input: 4 maps (B, C, H, W);
    output: tuple of 4 maps (B, C, 4H, 4W), (B, C, 2H, 2W), (B, C, H, W), (B, C, H/2, W/2).
    """

    def __init__(self, in_channels: int, norm_cfg: dict = dict(type='SyncBN', requires_grad=True),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        c = in_channels
        self.in_channels = c
        self.fpn1 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, 2), build_norm_layer(norm_cfg, c)[1], nn.GELU(),
                                  nn.ConvTranspose2d(c, c, 2, 2))
        self.fpn2 = nn.ConvTranspose2d(c, c, 2, 2)
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(2, 2)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != 4:
            raise ValueError(f'FViTSimplePyramid expects 4 feature maps (one per tapped block), got {len(inputs)}')
        for x in inputs:
            if x.shape[1] != self.in_channels:
                raise ValueError(f'FViTSimplePyramid: map with {x.shape[1]} channels, expected {self.in_channels}')
        return (self.fpn1(inputs[0]), self.fpn2(inputs[1]), self.fpn3(inputs[2]), self.fpn4(inputs[3]))


@register_everywhere(DET_MODELS, MODELS)
class SequentialNeck(BaseModule):
    """Apply several necks in order, e.g. ``[FViTSimplePyramid, FPN]`` so a stock two-stage config can use a
    plain ViT backbone: ``neck=dict(type='SequentialNeck', necks=[dict(type='FViTSimplePyramid', ...),
    dict(type='FPN', ...)])``."""

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
