"""Shared helpers of the distillation tests (tiny models and batches)."""
import os.path as osp

import torch

from declip_mm.models.backbones import tiny_clip_overrides

TINY_EVA = tiny_clip_overrides('eva')
TINY_VFM = dict(embed_dim=64, depth=2, num_heads=4, img_size=112)
CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'declip')


def student_cfg(dense_mode='csa', **kw):
    cfg = dict(type='DeCLIPViT', model_name='EVA02-B-16', model_overrides=TINY_EVA, dense_mode=dense_mode,
               out_types=('dense', ))
    cfg.update(kw)
    return cfg


def vfm_cfg(name='dinov2_s', **kw):
    cfg = dict(type='VFMTeacher', name=name, model_kwargs=dict(TINY_VFM))
    cfg.update(kw)
    return cfg


_STUDENTS = {}


def build_distiller(dense_mode='csa', **kw):
    """A tiny distiller. Building open_clip models is slow, so the random student of each mode is built once
    (seed 0) and a copy is passed in as a module."""
    import copy
    import declip_mm  # noqa: F401
    from declip_mm.registry import MODELS
    if 'base' not in _STUDENTS:
        torch.manual_seed(0)
        _STUDENTS['base'] = MODELS.build(student_cfg('csa'))
    student = copy.deepcopy(_STUDENTS['base'])
    student.dense_mode = dense_mode  # the mode is only read at forward time
    torch.manual_seed(0)
    cfg = dict(type='DeCLIPDistiller', student=student, vfm=vfm_cfg())
    cfg.update(kw)
    return MODELS.build(cfg)


def make_batch(distiller=None, batch=2, det=128, crop=48, seed=0, grid='official', root=None):
    """A collated batch from the grid-crop transform on generated images."""
    import numpy as np
    from mmengine.dataset import default_collate
    from declip_mm.datasets.synthetic_images import make_image
    from declip_mm.datasets.transforms.grid_crops import DeCLIPGridCrops
    t = DeCLIPGridCrops(det_size=det, student_patch=16, vfm_patch=14, crop_size=crop, max_crops=20, grid=grid,
                        seed=seed)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(batch):
        img, _, _ = make_image(rng)
        samples.append(t(dict(img=img, img_path=f'img{i}', sample_idx=i, epoch=0)))
    return default_collate([dict(inputs=s['inputs'], data_samples=s['data_samples']) for s in samples])
