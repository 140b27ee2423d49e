"""Tiny models and batches shared by the performance-path tests (fast on CPU)."""
import copy

import torch

_CACHE = {}


def build_tiny_distiller(dense_mode='qq', **kw):
    """A tiny EVA student / teacher + tiny DINOv2-S VFM distiller (seed 0); the random student is built once."""
    import declip_mm  # noqa: F401
    from mmengine.registry import DefaultScope
    from declip_mm.models.backbones import tiny_clip_overrides
    from declip_mm.registry import MODELS
    with DefaultScope.overwrite_default_scope('declip_mm'):  # whatever scope an earlier test left current
        return _build(MODELS, tiny_clip_overrides, dense_mode, kw)


def _build(MODELS, tiny_clip_overrides, dense_mode, kw):
    if 'student' not in _CACHE:
        torch.manual_seed(0)
        _CACHE['student'] = MODELS.build(dict(type='DeCLIPViT', model_name='EVA02-B-16',
                                              model_overrides=tiny_clip_overrides('eva'), dense_mode='csa',
                                              out_types=('dense', )))
    student = copy.deepcopy(_CACHE['student'])
    student.dense_mode = dense_mode
    torch.manual_seed(0)
    cfg = dict(type='DeCLIPDistiller', student=student,
               vfm=dict(type='VFMTeacher', name='dinov2_s',
                        model_kwargs=dict(embed_dim=64, depth=2, num_heads=4, img_size=112)))
    cfg.update(kw)
    return MODELS.build(cfg)


def tiny_batch(batch=2, det=128, crop=48, seed=0):
    """A collated distillation batch (student 128 px, VFM 112 px, crops 48 px) from generated images."""
    import numpy as np
    from mmengine.dataset import default_collate
    from declip_mm.datasets.synthetic_images import make_image
    from declip_mm.datasets.transforms.grid_crops import DeCLIPGridCrops
    t = DeCLIPGridCrops(det_size=det, student_patch=16, vfm_patch=14, crop_size=crop, max_crops=20, seed=seed)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(batch):
        img, _, _ = make_image(rng)
        samples.append(t(dict(img=img, img_path=f'img{i}', sample_idx=i, epoch=0)))
    return default_collate([dict(inputs=s['inputs'], data_samples=s['data_samples']) for s in samples])
