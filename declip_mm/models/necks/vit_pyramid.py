"""OV-DQUO's simple pyramid over ViT taps: one resampling branch per tap, no norm / activation."""
from typing import Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere


@register_everywhere(DET_MODELS, MODELS)
class ViTPyramidNeck(BaseModule):
    """Turn same-stride ViT taps into a pyramid: rescale 2 -> ``ConvTranspose2d(C, C, 2, 2)``, 1 -> identity,
    0.5 -> ``MaxPool2d(2)``.

    OV-DQUO's ViT path (taps after blocks 5 / 7 / 11 of B/16, rescales ``(2, 1, 0.5)`` -> strides 8 / 16 / 32).  The
    ConvT is the only trainable backbone-side layer there (PyTorch default init).  mmseg's ``Feature2Pyramid``
    cannot stand in: for ``rescales=[2, 1, 0.5]`` it fails at forward (it only builds the 0.5 branch for a
    4-entry list).  Follow it with ``ChannelMapper(kernel_size=1, norm_cfg=GN(32), act_cfg=None, bias=True)``.

    Args:
        in_channels: channels of every tap (the ViT width).
        rescales: one factor per tap, each in (2, 1, 0.5).
    Shapes: ``inputs`` k x (B, C, H, W) -> k x (B, C, r_i H, r_i W).
    """

    def __init__(self, in_channels: int, rescales: Sequence[float] = (2, 1, 0.5), init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        branches = []
        for r in rescales:
            if r == 2:
                branches.append(nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2))
            elif r == 1:
                branches.append(nn.Identity())
            elif r == 0.5:
                branches.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                raise ValueError(f'ViTPyramidNeck: rescale {r} not supported (use 2, 1 or 0.5)')
        self.rescales = tuple(rescales)
        self.branches = nn.ModuleList(branches)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.branches):
            raise ValueError(f'ViTPyramidNeck got {len(inputs)} maps for {len(self.branches)} rescales '
                             f'{self.rescales} (backbone out_indices and neck rescales must match)')
        return tuple(b(x) for b, x in zip(self.branches, inputs))
