"""F-ViT inference as a user meets it: the shipped test pipeline on real photos, batch size, image borders."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

import declip_mm  # noqa: F401
from .conftest import REPO

TINY_CFG = osp.join(REPO, 'configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


def photo_bgr():
    import matplotlib
    return cv2.imread(osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))  # 600 x 512


def array_pipeline(cfg):
    """The config's test pipeline for in-memory BGR arrays (no annotations)."""
    steps = [copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadAnnotations']
    assert steps[0]['type'] == 'LoadImageFromFile'
    steps[0] = dict(type='LoadImageFromNDArray')
    return Compose(steps)


@pytest.fixture(scope='module')
def tiny():
    init_default_scope('mmdet')
    cfg = Config.fromfile(TINY_CFG)
    cfg.model.roi_head.bbox_head.text_embeddings = None
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='no text embeddings'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.eval()


def run(model, pipe, imgs):
    data = pseudo_collate([pipe(dict(img=im, img_id=i)) for i, im in enumerate(imgs)])
    with torch.no_grad():
        return model.test_step(data)


def test_backbone_maps_are_contiguous(tiny):
    """A (B, C, h, w) view of transposed tokens has channels-last strides for B > 1; mmcv's RoIAlign reads raw
    NCHW memory, so the maps must be contiguous."""
    _, model = tiny
    out = model.backbone.extract(torch.randn(2, 3, 64, 64), outputs=('feats', 'dense'))
    assert all(f.is_contiguous() for f in out['feats']) and out['dense'].is_contiguous()
    assert all(f.is_contiguous() for f in model.extract_feat(torch.randn(2, 3, 64, 64)))


def test_detections_do_not_depend_on_the_batch(tiny):
    """Three photos of different sizes in one batch give the detections each gives alone (was: RoI features read
    channels-last neck maps as NCHW for batch > 1, top score 0.38 in a batch vs 0.34 alone)."""
    cfg, model = tiny
    pipe = array_pipeline(cfg)
    p = photo_bgr()
    imgs = [p, cv2.resize(p, (300, 200)), cv2.resize(p, (100, 180))]
    batch = run(model, pipe, imgs)
    for im, b in zip(imgs, batch):
        a = run(model, pipe, [im])[0].pred_instances
        b = b.pred_instances
        assert len(a) == len(b) > 10
        assert torch.equal(a.labels, b.labels)
        assert torch.allclose(a.scores, b.scores, atol=1e-5)
        assert torch.allclose(a.bboxes, b.bboxes, atol=1e-3)
