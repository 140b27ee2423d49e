"""All configs under configs/fvit parse, and their key settings match the F-ViT recipe."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from .conftest import REPO

CFG_DIR = osp.join(REPO, 'configs/fvit')
ALL = sorted(p for p in glob.glob(osp.join(CFG_DIR, '*.py')))


@pytest.mark.parametrize('path', ALL, ids=[osp.basename(p) for p in ALL])
def test_parses(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type in ('FViT', 'FasterRCNN')
    assert 'declip_mm' in cfg.custom_imports['imports']


def _c(name):
    return Config.fromfile(osp.join(CFG_DIR, name))


def test_ov_coco_recipe():
    b = _c('fvit_eva02-b16_8xb8-3e_ov-coco-640.py')
    head = b.model.roi_head.bbox_head
    assert (head.alpha, head.beta, head.vlm_temperature) == (0.1, 0.8, 75.0)
    assert (head.num_classes, head.fc_out_channels) == (65, 512)
    assert head.loss_cls.bg_weight == 0.6 and b.model.test_cfg.rcnn.nms.iou_threshold == 0.4
    assert b.model.backbone.out_indices == (3, 5, 7, 11) and b.model.backbone.last_feat_mode == 'maskclip'
    assert b.train_cfg.max_epochs == 3 and len(b.param_scheduler) == 1  # constant LR after warmup
    assert b.param_scheduler[0].end == 250 and b.optim_wrapper.optimizer.lr == 1e-4
    assert b.optim_wrapper.optimizer.weight_decay == 0.1 and b.optim_wrapper.clip_grad.max_norm == 1.0
    assert b.auto_scale_lr.base_batch_size == 64 and b.optim_wrapper.type == 'AmpOptimWrapper'
    assert b.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
    # square padding after normalisation (value 0) in the data preprocessor, none in the test pipeline
    assert b.model.data_preprocessor.pad_size_divisor == 640 and b.model.data_preprocessor.get('pad_value', 0) == 0
    assert not any('Pad' in t.type for t in b.test_dataloader.dataset.pipeline)
    d = _c('fvit_eva02-b16-declip_8xb8-3e_ov-coco-640.py')
    assert d.model.backbone.dense_mode == 'csa' and d.model.roi_head.bbox_head.vlm_temperature == 45.0
    assert d.model.backbone.last_feat_mode == 'maskclip'
    L = _c('fvit_eva02-l14-336_8xb8-3e_ov-coco-896.py')
    assert L.model.backbone.out_indices == (6, 10, 14, 23) and L.model.roi_head.bbox_head.fc_out_channels == 768
    assert L.model.rpn_head.anchor_generator.strides == [3.5, 7, 14, 28, 56]
    assert [t for t in L.train_dataloader.dataset.pipeline if t.type == 'RandomResize'][0].scale == (896, 896)


def test_ov_lvis_recipe():
    b = _c('fvit_eva02-b16_8xb8-48e_ov-lvis-1024.py')
    head = b.model.roi_head.bbox_head
    assert (head.alpha, head.beta, head.vlm_temperature, head.num_classes) == (0.1, 0.6, 50.0, 1203)
    assert head.loss_cls.bg_weight == 0.9 and b.model.rpn_head.norm_cfg.type == 'SyncBN'
    assert b.model.roi_head.mask_head.class_agnostic and b.model.train_cfg.rcnn.assigner.match_low_quality
    assert b.train_cfg.max_epochs == 48 and b.param_scheduler[1].milestones == [32, 44]
    assert b.train_dataloader.dataset.type == 'OVLVISV1Dataset'  # no ClassBalancedDataset wrapper; json order checked
    assert set(b.val_evaluator.metric) == {'bbox', 'segm'}
    L = _c('fvit_eva02-l14-336_8xb8-48e_ov-lvis-896.py')
    assert L.model.roi_head.bbox_head.beta == 0.4
    assert _c('fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-896.py').model.roi_head.bbox_head.vlm_temperature == 90.0
    t = _c('fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-to-coco-896.py')
    th = t.model.roi_head.bbox_head
    assert (th.alpha, th.beta, th.vlm_temperature, th.learn_logit_scale, th.num_classes) == (0.2, 0.2, 120.0, False, 80)
    assert t.model.test_cfg.rcnn.max_per_img == 300  # CLIPSelf's transfer configs inherit the OV-LVIS 300
    assert th.loss_cls.type == 'CrossEntropyLoss' and 'bg_weight' not in th.loss_cls  # stock loss, no merged keys
    o = _c('fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-to-objects365v1-896.py')
    oh = o.model.roi_head.bbox_head
    assert (oh.alpha, oh.num_classes, oh.class_names) == (0.3, 365, 'objects365v1')
    assert o.test_dataloader.dataset.type == 'Objects365V1Dataset'  # v1, as CLIPSelf and the paper
    assert 'objects365v1' in oh.text_embeddings and 'Obj365_v1' in o.test_evaluator.ann_file
    assert o.test_evaluator.sort_categories and o.model.test_cfg.rcnn.max_per_img == 300
    assert o.model.roi_head.mask_head is None and t.model.roi_head.mask_head is None  # boxes only, as CLIPSelf


def test_anchor_and_roi_strides():
    """FPN levels / anchors: strides 4..64 with base sizes 32..512 (B/16), 3.5..56 with 28..448 (L/14)."""
    from mmdet.registry import TASK_UTILS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    for name, strides, sizes in (('fvit_eva02-b16_8xb8-3e_ov-coco-640.py', [4, 8, 16, 32, 64], [32, 64, 128, 256, 512]),
                                 ('fvit_eva02-l14-336_8xb8-3e_ov-coco-896.py', [3.5, 7, 14, 28, 56],
                                  [28, 56, 112, 224, 448])):
        cfg = _c(name)
        gen = TASK_UTILS.build(cfg.model.rpn_head.anchor_generator)
        assert [s[0] for s in gen.strides] == strides
        assert [float(b) * 8 for b in gen.base_sizes] == pytest.approx(sizes)  # scale 8
        anchors = gen.single_level_grid_priors((2, 2), 0, device='cpu')
        w = anchors[:, 2] - anchors[:, 0]
        h = anchors[:, 3] - anchors[:, 1]
        assert (w * h).sqrt()[1].item() == pytest.approx(sizes[0], rel=1e-3)  # ratio-1 anchor of level 0
        assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == strides[:4]
        assert cfg.model.neck.necks[1].num_outs == 5
