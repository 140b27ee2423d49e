"""Pyramid / FPN / RPN / detector on the tiny random DeCLIPViT."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import declip_mm  # noqa: F401
from .conftest import REPO

TINY_CFG = osp.join(REPO, 'configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


def _tiny_model_cfg(text_embeddings=None):
    cfg = Config.fromfile(TINY_CFG)
    m = copy.deepcopy(cfg.model)
    m.roi_head.bbox_head.text_embeddings = text_embeddings
    return m


def _samples(n=2, size=128):
    out = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.),
                                        pad_shape=(size, size), batch_input_shape=(size, size)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 60., 70.], [64., 64., 120., 110.]]),
                                      labels=torch.tensor([0, 3]))
        out.append(s)
    return out


def test_norm_rpn_head_has_norm_and_float_scores():
    init_default_scope('mmdet')
    cfg = dict(type='NormRPNHead', in_channels=8, feat_channels=8, num_convs=2, norm_cfg=dict(type='BN'),
               anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[1.0], strides=[4]),
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[1.] * 4),
               test_cfg=ConfigDict(nms_pre=50, max_per_img=10, nms=dict(type='nms', iou_threshold=0.7),
                                   min_bbox_size=0))
    head = MODELS.build(cfg).eval()
    assert all(m.with_norm for m in head.rpn_conv)
    plain = MODELS.build(dict(cfg, norm_cfg=None))
    assert not any(m.with_norm for m in plain.rpn_conv)
    res = head.predict((torch.randn(1, 8, 16, 16), ), _samples(1, 64), rescale=False)
    assert res[0].scores.dtype == torch.float32 and len(res[0]) <= 10


@pytest.fixture(scope='module')
def tiny_detector():
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(_tiny_model_cfg())


def test_detector_frozen_backbone_and_shapes(tiny_detector):
    model = tiny_detector
    model.zero_grad(set_to_none=True)
    bb = model.backbone
    assert not any(p.requires_grad for p in bb.parameters())
    model.train()
    assert not bb.training and model.neck.training
    img = torch.randn(2, 3, 128, 128)
    feats, dense = model.backbone_forward(img, with_dense=True)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 8, 8)] * 4
    assert dense.shape == (2, 32, 8, 8)
    assert torch.allclose(dense.norm(dim=1), torch.ones(2, 8, 8), atol=1e-5)
    x = model.extract_feat(img)
    assert [tuple(t.shape[-2:]) for t in x] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    # train step: losses finite, gradients reach neck/heads but never the ViT
    losses = model.loss(img, _samples())
    total = sum(v for k, v in losses.items() if 'loss' in k for v in (v if isinstance(v, list) else [v]))
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in bb.parameters())
    assert model.roi_head.bbox_head.fc_cls.logit_scale.grad is not None
    assert model.neck.necks[0].upsample_4x[0].weight.grad is not None
    # an optimizer built by mmengine only gets trainable params
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and not any(n.startswith('backbone.') for n in names)


def test_detector_predict_uses_vlm_feat(tiny_detector, monkeypatch):
    model = tiny_detector.eval()
    calls = {}
    orig = model.roi_head.predict

    def spy(*a, **kw):
        calls.update(kw)
        return orig(*a, **kw)
    monkeypatch.setattr(model.roi_head, 'predict', spy)
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 128, 128), _samples(1))
    assert calls['vlm_feat'].shape == (1, 32, 8, 8) and calls['vlm_scale'] == pytest.approx(1 / 16)
    pred = out[0].pred_instances
    assert pred.bboxes.shape[1] == 4 and (pred.labels < 6).all() and (pred.scores <= 1).all()


def test_ov_lvis_l14_config_mask_rcnn_runs():
    """The OV-LVIS L/14 config (Mask R-CNN, NormRPNHead, strides 3.5..56, csa vlm_feat) with a tiny patch-14 ViT."""
    from mmdet.structures.mask import BitmapMasks
    from mmengine.model import revert_sync_batchnorm

    from declip_mm.models.backbones import tiny_clip_overrides
    cfg = Config.fromfile(osp.join(REPO, 'configs/fvit/fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-896.py'))
    m = copy.deepcopy(cfg.model)
    ov = tiny_clip_overrides('eva')
    ov['vision_cfg']['timm_kwargs']['patch_size'] = 14
    ov['vision_cfg']['patch_size'] = 14
    m.backbone.update(checkpoint=None, model_overrides=ov, out_indices=(0, 1, 2, 3))
    m.neck.necks[0].embed_dim = 64
    m.neck.necks[1].in_channels = [64] * 4
    m.roi_head.bbox_head.update(text_embeddings=None, fc_out_channels=32)
    m.train_cfg.rpn_proposal.max_per_img = m.test_cfg.rpn.max_per_img = 50  # keep the 1203-class NMS cheap
    m.train_cfg.rcnn.sampler.num = 64
    init_default_scope('mmdet')
    model = revert_sync_batchnorm(MODELS.build(m))
    assert model.backbone.patch_size == 14 and model.backbone.dense_mode == 'csa'
    assert model.roi_head.bbox_head.ensemble_exponent[:1203].eq(0.4).sum() == 337  # rare classes use beta
    S = 112
    s = _samples(1, S)[0]
    s.gt_instances.labels = torch.tensor([5, 900])
    masks = torch.zeros(2, S, S, dtype=torch.uint8)
    masks[0, 12:70, 10:60] = 1
    masks[1, 64:110, 64:110] = 1
    s.gt_instances.masks = BitmapMasks(masks.numpy(), S, S)
    s.gt_instances.bboxes = torch.tensor([[10., 12., 60., 70.], [64., 64., 110., 110.]])
    model.train()
    losses = model.loss(torch.randn(1, 3, S, S), [s])
    assert {'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses) and torch.isfinite(losses['loss_mask'])
    model.eval()
    with torch.no_grad():
        pred = model.predict(torch.randn(1, 3, S, S), [s])[0].pred_instances
    assert pred.masks.shape[-2:] == (S, S) and len(pred) <= 300
