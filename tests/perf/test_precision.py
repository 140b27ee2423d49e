"""Mixed precision: bf16 autocast matches fp32 within the stated tolerance, the losses and N x N similarities stay
fp32, the teachers run in inference mode, and the AMP choice of tools/train.py (--amp) per device."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from perf_helpers import build_tiny_distiller, tiny_batch

ROOT = osp.join(osp.dirname(__file__), '..', '..')
# Stated tolerance of the bf16 path (docs/benchmarks.md): losses within 2 % (relative) of fp32, features and
# gradients with cosine similarity >= 0.99 to fp32.
LOSS_RTOL = 0.02
COS_MIN = 0.99


def _cos(a, b):
    return F.cosine_similarity(a.float().flatten(), b.float().flatten(), dim=0).item()


@pytest.fixture(scope='module')
def distiller_and_inputs():
    model = build_tiny_distiller('csa')
    model.train()
    data = model.data_preprocessor(tiny_batch(), True)
    return model, data


def _step(model, data, autocast):
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        inp = data['inputs']
        out = model.student_forward(inp['student'])
        losses = model.loss(inp, data['data_samples'])
    total = losses['loss_content'] + losses['loss_context']
    total.backward()
    grads = torch.cat([p.grad.flatten() for p in model.student.parameters() if p.grad is not None])
    return out, losses, grads


def test_bf16_autocast_matches_fp32(distiller_and_inputs):
    model, data = distiller_and_inputs
    out32, l32, g32 = _step(model, data, autocast=False)
    out16, l16, g16 = _step(model, data, autocast=True)
    assert out32['dense'].dtype == torch.float32
    assert out16['dense'].dtype == torch.bfloat16  # the autocast really ran the student in bf16
    for k in ('loss_content', 'loss_context'):
        assert l16[k].dtype == torch.float32, f'{k} must be computed in fp32'
        assert abs(l16[k].item() - l32[k].item()) <= LOSS_RTOL * abs(l32[k].item()), (k, l16[k], l32[k])
    assert _cos(out16['dense'], out32['dense']) >= COS_MIN
    for a, b in zip(out16['context'], out32['context']):
        assert _cos(a, b) >= COS_MIN
    assert torch.isfinite(g16).all() and _cos(g16, g32) >= COS_MIN


def test_teachers_bf16_and_inference_mode(distiller_and_inputs):
    model, data = distiller_and_inputs
    inp = data['inputs']
    seen = {}

    def hook(name):
        def fn(mod, args, out):
            x = out if isinstance(out, torch.Tensor) else None
            seen[name] = (torch.is_inference_mode_enabled(), None if x is None else x.dtype)
        return fn

    def first_linear(blk):
        return next(m for m in blk.modules() if isinstance(m, torch.nn.Linear))

    # a linear layer inside the first block of each teacher: runs in bf16 (norms and the output stay fp32)
    hooks = [first_linear(model.vfm.model.blocks[0]).register_forward_hook(hook('vfm')),
             first_linear(model.teacher._tower.blocks[0]).register_forward_hook(hook('teacher'))]
    crops = inp['crops'][inp['boxes'][..., 4] > 0]
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            f_t = model.teacher_crop_embeddings(crops)
            v = model.vfm_features(inp['vfm'])
    finally:
        for h in hooks:
            h.remove()
    assert seen['vfm'] == (True, torch.bfloat16)
    assert seen['teacher'] == (True, torch.bfloat16)
    # cloned back to normal tensors: usable in the student's autograd graph
    assert not f_t.is_inference() and not v.is_inference()
    f32 = model.teacher_crop_embeddings(crops)
    assert f32.dtype == torch.float32 and _cos(f_t, f32) >= COS_MIN


def test_context_similarities_fp32_under_autocast():
    from declip_mm.models.losses.declip_losses import context_loss
    torch.manual_seed(0)
    q = torch.randn(2, 32, 6, 6)
    vfm = torch.randn(2, 24, 6, 6)
    ref = context_loss((q, ), vfm)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = context_loss((q.bfloat16(), ), vfm.bfloat16())
    assert got.dtype == torch.float32
    # inputs rounded to bf16, math in fp32: close to the fp32 loss (bf16 math would be ~1e-2 off)
    assert abs(got.item() - ref.item()) < 2e-3 * abs(ref.item())


# ---------------------------------------------------------------------------------------------- AMP choice
def _cfg(**ow):
    return Config(dict(optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4), **ow)))


def test_amp_flag_picks_bf16_or_fp16_with_scaling():
    from declip_mm.engine.amp import resolve_amp
    c = _cfg(type='OptimWrapper')
    assert resolve_amp(c, force=True, cuda=True, bf16=True) == 'bfloat16'
    assert c.optim_wrapper.type == 'AmpOptimWrapper' and c.optim_wrapper.dtype == 'bfloat16'
    c = _cfg(type='OptimWrapper')
    assert resolve_amp(c, force=True, cuda=True, bf16=False) == 'float16'
    assert c.optim_wrapper.dtype == 'float16' and c.optim_wrapper.loss_scale == 'dynamic'
    c = _cfg(type='OptimWrapper')
    assert resolve_amp(c, force=False, cuda=True, bf16=True) == 'float32'
    assert c.optim_wrapper.type == 'OptimWrapper'


def test_amp_config_adapts_to_device():
    from declip_mm.engine.amp import resolve_amp
    c = _cfg(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=512.0)
    assert resolve_amp(c, cuda=True, bf16=False) == 'float16'  # V100 / T4: fp16 + dynamic scaling
    assert c.optim_wrapper.loss_scale == 'dynamic'
    c = _cfg(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=512.0)
    assert resolve_amp(c, cuda=True, bf16=True) == 'bfloat16' and c.optim_wrapper.loss_scale == 512.0
    c = _cfg(type='AmpOptimWrapper', dtype='bfloat16', loss_scale='dynamic')
    assert resolve_amp(c, cuda=False, bf16=False) == 'float32'  # mmengine's AmpOptimWrapper is CUDA only
    assert c.optim_wrapper.type == 'OptimWrapper' and 'dtype' not in c.optim_wrapper
    assert 'loss_scale' not in c.optim_wrapper
    c = _cfg(type='OptimWrapper', dtype='bfloat16', loss_scale='dynamic')  # --cfg-options type=OptimWrapper
    assert resolve_amp(c, cuda=True, bf16=True) == 'float32' and 'dtype' not in c.optim_wrapper


def test_train_py_amp_switch(monkeypatch):
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import train
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: True)
    cfg_path = osp.join(ROOT, 'configs', 'declip', 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py')
    cfg = train.build_cfg(train.parse_args([cfg_path, '--amp', '--work-dir', '/tmp/x']))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    cfg = train.build_cfg(train.parse_args([cfg_path, '--work-dir', '/tmp/x']))
    assert cfg.optim_wrapper.type == 'OptimWrapper'


@pytest.mark.parametrize('path', [
    'configs/declip/declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py',
    'configs/declip/declip_eva02-l14-336_dinov2-l-paper_8xb2-6e_coco-560.py',
    'configs/fvit/fvit_eva02-b16-declip_8xb8-3e_ov-coco-640.py',
    'configs/fvit/fvit_eva02-l14-336_8xb8-48e_ov-lvis-896.py',
    'configs/catseg/catseg_eva02-b16-declip_4xb1-80k_coco-stuff171-train-384.py',
])
def test_training_configs_autocast_bf16(path):
    ow = Config.fromfile(osp.join(ROOT, path)).optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.dtype == 'bfloat16'
