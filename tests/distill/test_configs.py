"""Every distillation config parses and carries the documented settings (method doc section 5)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from declip_mm.models.vfm import VFM_SPECS

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'declip')
CONFIGS = sorted(p for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))


def test_expected_configs_exist():
    names = {osp.basename(p) for p in CONFIGS}
    assert {'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py', 'declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py', 'declip_eva02-l14-336_dinov2-l_4xb2-6e_coco-560.py',
            'declip_eva02-b16_dinov2-b-paper_8xb2-6e_coco-1024.py', 'declip_vitb16_dinov2-b_4xb4-6e_coco-560.py',
            'declip_eva02-b16_no-context-clipself-ablation_4xb4-6e_coco-560.py', 'declip_eva02-b16_self-vfm-ablation_4xb4-6e_coco-560.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_config_consistency(path):
    cfg = Config.fromfile(path, import_custom_modules=False)
    m = cfg.model
    assert m.type == 'DeCLIPDistiller'
    t = cfg.train_dataloader.dataset.pipeline[-1]
    assert t.type == 'DeCLIPGridCrops'
    name = m.student.model_name
    assert t.student_patch == (14 if 'L-14' in name else 16)
    if m.get('vfm'):
        assert t.vfm_patch == VFM_SPECS[m.vfm.name]['patch']
    # multi-GPU: the wrapper that keeps the non-finite-loss check (registered), and the documented NaN limit
    from mmengine.registry import MODEL_WRAPPERS  # the root registry, as Runner.wrap_model uses it
    from declip_mm.models.distillers import DeCLIPDistributedDataParallel
    assert MODEL_WRAPPERS.get(cfg.model_wrapper_cfg.type) is DeCLIPDistributedDataParallel
    assert m.max_nonfinite_steps == 10
    if osp.basename(path) == 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py':
        return
    assert t.crop_size == (336 if name.endswith('336') else 224)
    assert t.det_size in (560, 1024) and t.max_crops == 20
    assert m.alpha == (0.95 if 'L-14' in name else 0.7)
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.paramwise_cfg.flat_decay_mult == 0.0
    assert opt.optimizer.lr == 1e-5 and opt.optimizer.weight_decay == 0.1
    assert opt.optimizer.betas == ((0.9, 0.98) if m.student.model_name.startswith('ViT') else (0.9, 0.999))
    warm, cos = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.end == 1000 and warm.start_factor == 1e-3
    assert cos.type == 'DeCLIPCosineLR' and cos.warmup_iters == 1000 and cos.end == 6 and cfg.train_cfg.max_epochs == 6
    if 'paper' in path:
        assert t.grid == 'paper' and m.context_weight == 0.25
    elif 'ctx0.25' in path:
        assert m.context_weight == 0.25
    elif 'clipself' not in path:
        assert t.grid == 'official' and m.context_weight == 0.1
    if m.distill_mode == 'decoupled':
        assert m.student.dense_mode in ('qq', 'kk', 'vv', 'csa', 'all')
