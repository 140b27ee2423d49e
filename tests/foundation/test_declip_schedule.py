"""The distillation optimisation from mmengine's pieces (configs/declip/_base_/declip_schedule.py): step-by-step LR
and weight-decay groups equal to the official open_clip training code (re-implemented here).  (The commit that
introduced it also showed equality with our former hand-written scheduler / optimizer constructor.)"""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.optim import OptimWrapper, build_optim_wrapper

import declip_mm  # noqa: F401
from declip_mm.models.backbones import tiny_clip_overrides
from declip_mm.registry import MODELS, PARAM_SCHEDULERS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCHEDULE = osp.join(REPO, 'configs/declip/_base_/declip_schedule.py')


@pytest.fixture(autouse=True)
def _declip_scope():
    """Build in the declip_mm scope whatever scope an earlier test (a Runner) left current."""
    with DefaultScope.overwrite_default_scope('declip_mm'):
        yield


def official_lr(step, base, warmup, total):
    """open_clip's ``cosine_lr`` (DeCLIP training code): warmup ``base*(step+1)/warmup``, then cosine to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    e, es = step - warmup, total - warmup
    return 0.5 * (1 + math.cos(math.pi * e / es)) * base


def official_no_decay(name, p):
    """The official ``exclude`` rule of the weight-decay-free group."""
    return p.ndim < 2 or 'bn' in name or 'ln' in name or 'bias' in name or 'logit_scale' in name


def _lrs(sched_cfgs, epoch_length, epochs, base=1e-5):
    p = torch.nn.Parameter(torch.zeros(1))
    ow = OptimWrapper(torch.optim.AdamW([p], lr=base))
    scheds = []
    for c in copy.deepcopy(sched_cfgs):
        c['end'] = epochs if c.get('convert_to_iter_based') else c['end']
        extra = dict(epoch_length=epoch_length) if c.get('convert_to_iter_based') else {}
        scheds.append(PARAM_SCHEDULERS.build(c, default_args=dict(optimizer=ow, **extra)))
    out = []
    for _ in range(epoch_length * epochs):  # as mmengine's loop: lr used by this iteration, then the hook steps
        out.append(ow.param_groups[0]['lr'])
        ow.step()
        for s in scheds:
            s.step()
    return out


@pytest.mark.parametrize('epoch_length,epochs,warmup', [(7393, 6, 1000), (25, 3, 5), (3, 2, 10)])
def test_lr_step_by_step_equals_official(epoch_length, epochs, warmup):
    cfg = Config.fromfile(SCHEDULE)
    scheds = copy.deepcopy(cfg.param_scheduler)
    assert [s['type'] for s in scheds] == ['LinearLR', 'DeCLIPCosineLR']
    scheds[0].update(start_factor=1.0 / warmup, end=warmup)
    scheds[1].update(warmup_iters=warmup)
    got = _lrs(scheds, epoch_length, epochs)
    total = epoch_length * epochs
    want = [official_lr(i, 1e-5, warmup, total) for i in range(total)]
    assert len(got) == total
    worst = max(abs(g - w) / max(w, 1e-30) for g, w in zip(got, want))
    assert worst < 1e-7, worst  # float rounding of mmengine's chained form only
    if total > warmup:
        assert got[warmup - 1] == pytest.approx(1e-5) and got[-1] < 1e-5 * (math.pi / (total - warmup)) ** 2


def _distiller(family):
    torch.manual_seed(0)
    name = 'EVA02-B-16' if family == 'eva' else 'ViT-B-16'
    student = dict(type='DeCLIPViT', model_name=name, model_overrides=tiny_clip_overrides(family), dense_mode='qq',
                   split_qkv=family == 'openai')
    vfm = dict(type='VFMTeacher', name='dinov2_s', model_kwargs=dict(embed_dim=64, depth=2, num_heads=4, img_size=112))
    return MODELS.build(dict(type='DeCLIPDistiller', student=student, vfm=vfm, distill_mode='decoupled'))


@pytest.mark.parametrize('family', ['eva', 'openai'])
def test_weight_decay_groups_equal_official_rule(family):
    cfg = Config.fromfile(SCHEDULE)
    model = _distiller(family)
    opt_cfg = copy.deepcopy(cfg.optim_wrapper)
    if family == 'openai':  # as configs/declip/declip_vitb16_dinov2-b_4xb4-6e_coco-560.py
        opt_cfg.optimizer.update(betas=(0.9, 0.98), eps=1e-6)
    ow = build_optim_wrapper(model, opt_cfg)
    wd_of = {}
    for g in ow.optimizer.param_groups:
        for p in g['params']:
            wd_of[id(p)] = (g['weight_decay'], g['lr'], g['betas'], g['eps'])
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(id(p) in wd_of for p in trainable.values())
    got_no_decay = {n for n, p in trainable.items() if wd_of[id(p)][0] == 0.0}
    got_decay = {n for n, p in trainable.items() if wd_of[id(p)][0] == 0.1}
    want_no_decay = {n for n, p in trainable.items() if official_no_decay(n, p)}
    assert got_no_decay == want_no_decay and got_decay == set(trainable) - want_no_decay
    assert any('norm1.weight' in n or 'ln_1.weight' in n for n in got_no_decay) and got_decay
    betas = ((0.9, 0.999), 1e-8) if family == 'eva' else ((0.9, 0.98), 1e-6)
    assert {wd_of[id(p)][1:] for p in trainable.values()} == {(1e-5, ) + betas}
