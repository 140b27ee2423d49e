"""RPN head with optional norm layers in its convs (F-ViT OV-LVIS) and float NMS under AMP."""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import RPNHead

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere


@register_everywhere(DET_MODELS, MODELS)
class NormRPNHead(RPNHead):
    """mmdet's ``RPNHead`` whose ``num_convs`` stacked 3x3 convs take ``norm_cfg`` (e.g. ``dict(type='SyncBN')``,
    as F-ViT's OV-LVIS RPN; ``None`` gives the stock head's layers).  Proposal scores and boxes are cast to float
    before NMS, so fp16 (AMP) scores do not lose proposals to ties."""

    def __init__(self, in_channels: int, norm_cfg: Optional[dict] = None, **kwargs) -> None:
        self.norm_cfg = norm_cfg
        super().__init__(in_channels, **kwargs)

    def _init_layers(self) -> None:
        convs = []
        for i in range(self.num_convs):
            convs.append(ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3,
                                    padding=1, norm_cfg=self.norm_cfg, inplace=False))
        self.rpn_conv = nn.Sequential(*convs) if self.num_convs > 1 else convs[0]
        self.rpn_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.bbox_coder.encode_size, 1)

    def forward_single(self, x):
        x = self.rpn_conv(x)  # ConvModules end with ReLU (the stock head applies F.relu after its convs)
        return self.rpn_cls(x), self.rpn_reg(x)

    def _bbox_post_process(self, results, cfg, rescale: bool = False, with_nms: bool = True, img_meta=None):
        results.scores = results.scores.float()
        if hasattr(results.bboxes, 'tensor'):
            results.bboxes.tensor = results.bboxes.tensor.float()
        else:
            results.bboxes = results.bboxes.float()
        return super()._bbox_post_process(results, cfg, rescale=rescale, with_nms=with_nms, img_meta=img_meta)
