"""CorrCLIP set-up: the 24 benchmark configs carry the original's protocol, CorrCLIP's name files, the hook that
counts skipped images, and ``tools/benchmark.py seg`` on a CorrCLIP config.

* ``test_benchmark_configs_follow_the_original_protocol``: a wrong per-dataset value (short side, window, stride,
  ``prob_thd``, name file, mask folder, dataset) or a method constant (pad 56, x40, tau 4, DBSCAN eps 0.2, alpha /
  beta 1.0 / 0.5, q + k of DINO ViT-B/8, the vote with the segmentor's own masks, the DINO-style pos-embed resize
  for OpenAI / MetaCLIP) in any of the 24 configs (zdk258/CorrCLIP CorrCLIPv1/configs/cfg_*.py).
* ``test_corrclip_name_files``: the shipped CorrCLIP name files differ from ProxyCLIP's in anything but "people"
  and the COCO-Object background list without "bed" (CorrCLIPv1/configs/cls_*.txt).
"""
import glob
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from .conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))

ZS = osp.join(REPO, 'configs', 'zeroshot_seg')
# bench -> (dataset type, name file, short side, window, stride, prob_thd, mask folder)
PROTOCOL = {
    'voc21': ('PascalVOCDataset', 'corrclip_cls_voc21', 336, 336, 112, 0.2, 'voc'),
    'pc60': ('PascalContextDataset', 'corrclip_cls_context60', 336, 336, 112, 0.15, 'context'),
    'coco-object': ('COCOObjectDataset', 'corrclip_cls_coco_object', 336, 336, 112, 0.25, 'coco'),
    'voc20': ('VOC20Dataset', 'corrclip_cls_voc20', 336, 336, 112, 0.0, 'voc'),
    'pc59': ('PascalContextDataset59', 'corrclip_cls_context59', 336, 336, 112, 0.0, 'context'),
    'coco-stuff171': ('COCOStuffDataset', 'corrclip_cls_coco_stuff', 336, 336, 112, 0.0, 'coco'),
    'cityscapes': ('CityscapesDataset', 'corrclip_cls_city_scapes', 448, 224, 112, 0.0, 'city'),
    'ade150': ('ADE20KDataset', 'corrclip_cls_ade20k', 448, 336, 112, 0.0, 'ade'),
}
MODELS = {'vitb16': 'ViT-B-16', 'vitb16-metaclip': 'ViT-B-16-quickgelu', 'eva02-b16-declip': 'EVA02-B-16'}


@pytest.mark.parametrize('model', sorted(MODELS))
@pytest.mark.parametrize('bench', sorted(PROTOCOL))
def test_benchmark_configs_follow_the_original_protocol(model, bench):
    ds_type, names, side, crop, stride, thd, mdir = PROTOCOL[bench]
    cfg = Config.fromfile(osp.join(ZS, f'corrclip_{model}_dino-b8_sam2-masks_{bench}-{side}.py'))
    m = cfg.model
    assert m.type == 'DeCLIPZeroShotSegmentor' and m.backbone.model_name == MODELS[model]
    assert m.text_encoder.model_name == MODELS[model]
    assert (m.class_names, m.prob_thd, m.logit_scale, m.background_index) == (names, thd, 40.0, 0)
    assert (m.slide_crop, m.slide_stride, m.pad_multiple) == (crop, stride, 56)
    assert m.get('templates') is None  # the 80 OpenAI ImageNet templates
    p = m.proxy
    assert p.type == 'CorrCLIPAttention' and p.vfm.name == 'dino_b8'
    assert p.vfm.checkpoint == 'checkpoints/dino_vitbase8_pretrain.pth'
    assert (p.tau, p.eps, p.min_samples, p.alpha, p.beta, p.num_spatial, p.tap) == (4.0, 0.2, 1, 1.0, 0.5, 'auto',
                                                                                     'qk')
    assert p.mask_source == dict(type='MaskFileSource', mask_dir=f'data/region_masks/{mdir}')
    assert p.on_missing == 'error'
    assert [s.type for s in m.postprocess] == ['MaskVote'] and m.postprocess[0].mask_source is None
    assert [h.type for h in cfg.custom_hooks] == ['SegPostProcessReportHook']
    expect_pos = 'size' if model.startswith('eva') else 'dino_scale'
    assert m.backbone.get('pos_embed_resize', 'size') == expect_pos
    ds = cfg.test_dataloader.dataset
    assert ds.type == ds_type
    assert [t.type for t in ds.pipeline] == ['LoadImageFromFile', 'Resize', 'LoadAnnotations', 'PackSegInputs']
    assert tuple(ds.pipeline[1].scale) == (2048, side) and ds.pipeline[1].keep_ratio
    assert cfg.test_evaluator.type == 'IoUMetric'


def test_all_24_benchmark_configs_exist():
    assert len(glob.glob(osp.join(ZS, 'corrclip_*_dino-b8_sam2-masks_*.py'))) == 24


def test_corrclip_name_files():
    from declip_mm.datasets.ov_segmentation import SEG_CLASSES_DIR
    for bench in ('ade20k', 'city_scapes', 'coco_object', 'coco_stuff', 'context59', 'context60', 'voc20', 'voc21'):
        px = open(osp.join(SEG_CLASSES_DIR, f'cls_{bench}.txt')).read().splitlines()
        cc = open(osp.join(SEG_CLASSES_DIR, f'corrclip_cls_{bench}.txt')).read().splitlines()
        assert len(px) == len(cc), bench
        diff = [(a, b) for a, b in zip(px, cc) if a != b]
        expect = [('person', 'people')]
        if bench == 'coco_object':
            expect = [(px[0], px[0].replace('desk; bed; ', 'desk; ')), ('person', 'people')]
        assert diff == expect, bench


def test_benchmark_seg_covers_corrclip():
    import benchmark
    cfg = osp.join(ZS, 'corrclip_tiny-eva02_tiny-dino-b8_color-masks_ov-scenes-synthetic.py')
    res = benchmark.main(['seg', cfg, '--random-weights', '--size', '64', '80', '--batch', '2', '--iters', '1',
                          '--warmup', '0', '--device', 'cpu', '--peak-tflops', '1.0', '--regions', '5'])
    assert res['images_per_s'] > 0 and res['num_test_classes'] == 8 and res['flops_per_image'] > 0


def test_tiny_corrclip_through_test_tool(tmp_path):
    """tools/test.py with the tiny CorrCLIP config (batch 2, colour masks read from the image files): mIoU equals
    an independent recomputation from the dumped predictions; the report hook ran."""
    import test as test_tool
    from .test_seg_e2e import _dumping_config, independent_miou
    cfg, dump = _dumping_config(tmp_path, osp.join(ZS, 'corrclip_tiny-eva02_tiny-dino-b8_color-masks_ov-scenes-'
                                                       'synthetic.py'))
    metrics = test_tool.main([cfg, '--work-dir', str(tmp_path / 'cc'), '--cfg-options',
                              f'test_dataloader.dataset.data_root={tmp_path / "synth"}',
                              'test_dataloader.dataset.num_images=2'])
    n, d2, mm = independent_miou(dump, 8)
    assert n == 2
    assert metrics['mIoU'] == pytest.approx(d2, abs=0.006)


def test_gen_masks_finds_corrclip_mask_source():
    """tools/gen_masks.py without --generator uses a CorrCLIP config's ``model.proxy.mask_source`` (not the vote's
    ``mask_source=None``)."""
    import gen_masks
    cfg = Config.fromfile(osp.join(ZS, 'corrclip_vitb16_dino-b8_sam2-masks_pc59-336.py'))
    assert gen_masks.config_mask_source(cfg) == dict(type='MaskFileSource', mask_dir='data/region_masks/context')
    cfg.model.proxy.mask_source = dict(type='SAM2MaskSource', checkpoint='x.pt', cache_dir='m/')
    assert gen_masks.config_mask_source(cfg)['type'] == 'SAM2MaskSource'
    vote = Config.fromfile(osp.join(ZS, 'trainingfree-maskvote_eva02-b16-declip_voc21-448.py'))
    assert gen_masks.config_mask_source(vote)['mask_dir'] == 'data/region_masks/voc'
