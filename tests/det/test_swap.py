"""Swap check: mmdet's stock faster-rcnn_r50_fpn config with a DeCLIPViT + the F-ViT simple pyramid."""
import copy
import os.path as osp

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import declip_mm  # noqa: F401
from declip_mm.models.backbones import tiny_clip_overrides
from .conftest import REPO


def test_stock_faster_rcnn_with_declipvit():
    cfg = Config.fromfile(osp.join(REPO, 'configs/fvit/faster-rcnn_declipvit-b16_simple-pyramid_fpn_1x_coco.py'))
    assert cfg.model.type == 'FasterRCNN' and cfg.model.roi_head.type == 'StandardRoIHead'
    m = copy.deepcopy(cfg.model)
    m.backbone.update(checkpoint=None, model_overrides=tiny_clip_overrides('eva'), out_indices=(0, 1, 2, 3))
    m.neck.necks[0].update(in_channels=64, norm_cfg=dict(type='BN'))
    m.neck.necks[1].update(in_channels=[64] * 4)
    init_default_scope('mmdet')
    model = MODELS.build(m)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    s = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1., 1.),
                                    pad_shape=(96, 128), batch_input_shape=(96, 128)))
    s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 60., 70.]]), labels=torch.tensor([5]))
    img = torch.randn(1, 3, 96, 128)
    model.train()
    losses = model.loss(img, [s])
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox'} <= set(losses)
    model.eval()
    with torch.no_grad():
        out = model.predict(img, [s])
    assert out[0].pred_instances.bboxes.shape[-1] == 4
