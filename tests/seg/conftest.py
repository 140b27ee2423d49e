"""Shared helpers for the segmentation tests (tiny random CLIPs, generated data, CPU)."""
import copy
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CATSEG_CFG = osp.join(REPO, 'configs', 'catseg', 'catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py')
TINY_ZS_CFG = osp.join(REPO, 'configs', 'zeroshot_seg', 'trainingfree_tiny-eva02_ov-scenes-synthetic.py')


def tiny_model_cfg(path, **overrides):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    m = copy.deepcopy(cfg.model.to_dict())
    m.update(overrides)
    return m


def build_seg_model(mcfg):
    import declip_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from declip_mm.registry import SEG_MODELS
    init_default_scope('mmseg')
    return SEG_MODELS.build(mcfg)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
