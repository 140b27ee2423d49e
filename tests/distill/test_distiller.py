"""Distiller: trainable set, optimizer groups, LR schedule, gradients, alpha ensemble, export (doc section 5)."""
import math

import pytest
import torch

from distill_helpers import build_distiller, make_batch, student_cfg


def _trainable(d):
    return {n for n, p in d.student.named_parameters() if p.requires_grad}


def test_official_trainable_set_per_mode():
    d = build_distiller('qq')
    s = d.student
    tr = _trainable(d)
    last = s.num_blocks - 1
    frozen_expected = set(s.stem_param_names()) | set(s.head_param_names()) | set(s.block_param_names(last, 'ffn'))
    frozen_expected |= set(s.block_param_names(last, 'k'))
    all_blocks = {n for i in range(s.num_blocks) for n in s.block_param_names(i)}
    assert tr == all_blocks - frozen_expected
    assert 'visual.trunk.blocks.3.attn.k_proj.weight' not in tr
    assert 'visual.trunk.blocks.3.attn.q_proj.weight' in tr and 'visual.trunk.blocks.3.attn.q_proj.bias' in tr
    assert 'visual.trunk.blocks.2.attn.k_proj.weight' in tr and 'visual.trunk.blocks.0.mlp.fc2.weight' in tr
    assert not any(n.startswith('visual.trunk.blocks.3.mlp') or n.startswith('visual.trunk.blocks.3.norm2')
                   for n in tr)
    assert not any('patch_embed' in n or 'pos_embed' in n or 'cls_token' in n for n in tr)
    assert not any(n.startswith('visual.trunk.norm.') or n.startswith('visual.head') for n in tr)
    # csa keeps both Q and K of the last block; kk freezes Q (weight and bias)
    tr_csa = _trainable(build_distiller('csa'))
    assert tr_csa == tr | set(s.block_param_names(last, 'k'))
    tr_kk = _trainable(build_distiller('kk'))
    assert 'visual.trunk.blocks.3.attn.q_proj.weight' not in tr_kk
    assert 'visual.trunk.blocks.3.attn.q_proj.bias' not in tr_kk
    assert 'visual.trunk.blocks.3.attn.k_proj.weight' in tr_kk
    # Table 8: only the last N blocks
    tr2 = _trainable(build_distiller('csa', unlocked_blocks=2))
    assert not any(n.startswith(('visual.trunk.blocks.0.', 'visual.trunk.blocks.1.')) for n in tr2)
    assert any(n.startswith('visual.trunk.blocks.2.') for n in tr2)
    # teacher and VFM are frozen entirely
    d = build_distiller('csa')
    assert not any(p.requires_grad for p in d.teacher.parameters())
    assert not any(p.requires_grad for p in d.vfm.parameters())


def test_openai_family_qq_needs_split_qkv():
    from declip_mm.registry import MODELS
    from declip_mm.models.backbones import tiny_clip_overrides
    tiny_openai = tiny_clip_overrides('openai')
    cfg = dict(type='DeCLIPDistiller', vfm=None, distill_mode='self', context_weight=0.0,
               student=dict(type='DeCLIPViT', model_name='ViT-B-16', model_overrides=tiny_openai, dense_mode='qq'))
    # 'self' mode does not need a decoupled student, but 'qq' + packed in_proj cannot freeze K alone
    with pytest.raises(ValueError, match='split_qkv'):
        MODELS.build(cfg)
    cfg['student']['split_qkv'] = True
    d = MODELS.build(cfg)
    tr = _trainable(d)
    assert not any(n.endswith('resblocks.3.attn.k_proj_weight') for n in tr)
    assert any(n.endswith('resblocks.3.attn.q_proj_weight') for n in tr)
    assert d.normalize_dense_before_roi


# optimizer groups and the LR schedule: tests/foundation/test_declip_schedule.py


def test_only_student_gets_gradients():
    from mmengine.optim import build_optim_wrapper
    d = build_distiller('csa', context_weight=1.0)
    ow = build_optim_wrapper(d, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1)))
    before = {k: v.clone() for k, v in d.state_dict().items()}
    batch = make_batch(batch=2)
    d.train()
    log = d.train_step(batch, ow)
    assert {'loss', 'loss_content', 'loss_context'} <= set(log)
    after = d.state_dict()
    for k, v in before.items():
        if k.startswith(('teacher.', 'vfm.')):
            assert torch.equal(v, after[k]), k  # bit-identical
    for n, p in d.named_parameters():
        if n.startswith(('teacher.', 'vfm.')):
            assert p.grad is None
    trainable = [n for n, p in d.student.named_parameters() if p.requires_grad]
    changed = [n for n in trainable if not torch.equal(before['student.' + n], after['student.' + n])]
    assert len(changed) == len(trainable)
    frozen = [n for n, p in d.student.named_parameters() if not p.requires_grad]
    assert all(torch.equal(before['student.' + n], after['student.' + n]) for n in frozen)


def test_alpha_ensemble_formula_and_export(tmp_path):
    from declip_mm.engine.hooks.distill_hooks import export_student
    from declip_mm.models.backbones import DeCLIPViT
    d = build_distiller('csa', alpha=0.7)
    init = {k: v.clone() for k, v in d.student.state_dict().items()}
    with torch.no_grad():
        for p in d.student.parameters():
            p.add_(torch.randn_like(p))
    raw = {k: v.clone() for k, v in d.student.state_dict().items()}
    ens = d.ensembled_student_state()
    for k in raw:
        if raw[k].is_floating_point():
            assert torch.allclose(ens[k], 0.7 * raw[k] + 0.3 * init[k], atol=1e-6)
    assert all(torch.equal(v, raw[k]) for k, v in d.ensembled_student_state(2.0).items())
    assert all(torch.equal(v, raw[k]) for k, v in d.ensembled_student_state(1.0).items())
    # export with the ensemble; the student keeps its raw weights
    path = export_student(d, str(tmp_path / 'bb.pth'))
    assert all(torch.equal(v, raw[k]) for k, v in d.student.state_dict().items())
    ck = torch.load(path, map_location='cpu', weights_only=False)
    assert ck['meta']['declip_mm']['dense_mode'] == 'csa'
    for k, v in ck['state_dict'].items():
        assert torch.allclose(v, ens[k]), k
    # raw export reloads into a fresh DeCLIPViT and reproduces the student's outputs exactly
    path = export_student(d, str(tmp_path / 'raw.pth'), alpha=2.0)
    cfg = student_cfg('csa')
    cfg.pop('type')
    bb = DeCLIPViT(checkpoint=path, **cfg)
    assert set(bb.state_dict()) == set(d.student.state_dict())
    x = torch.randn(2, 3, 64, 80)
    d.eval()
    bb.eval()
    a = d.student.extract(x, ('dense', 'context', 'cls'))
    b = bb.extract(x, ('dense', 'context', 'cls'))
    assert torch.equal(a['dense'], b['dense']) and torch.equal(a['cls'], b['cls'])
    assert all(torch.equal(u, v) for u, v in zip(a['context'], b['context']))


def test_ablation_modes_losses():
    batch = make_batch(batch=2)
    d = build_distiller('maskclip', distill_mode='self', vfm=None, context_weight=0.0)
    assert d.vfm is None
    losses = d.loss(**d.data_preprocessor(batch, True))
    assert set(k for k in losses if k.startswith('loss')) == {'loss_content'}
    d = build_distiller('vanilla', distill_mode='self_vfm')
    losses = d.loss(**d.data_preprocessor(batch, True))
    assert {'loss_content', 'loss_context'} <= set(losses)
    with pytest.raises(ValueError, match='decoupled dense_mode'):
        build_distiller('vanilla', distill_mode='decoupled')
    d = build_distiller('csa', region_corr_weight=0.5, context_loss_type='kl')
    losses = d.loss(**d.data_preprocessor(batch, True))
    assert losses['loss_region_corr'] >= 0 and losses['loss_context'] >= 0


def test_loss_matches_manual_computation():
    """The distiller's losses equal the doc's formulas recomputed by hand from the parts."""
    import torch.nn.functional as F
    from declip_mm.models.losses.declip_losses import similarity
    from mmcv.ops import roi_align
    d = build_distiller('csa', context_weight=0.1)
    data = d.data_preprocessor(make_batch(batch=2), True)
    inp = data['inputs']
    with torch.no_grad():
        losses = d.loss(inp)
        out = d.student.extract(inp['student'], ('dense', 'context'))
        dense = out['dense']
        H, W = dense.shape[-2:]
        valid = inp['boxes'][..., 4] > 0
        rois = []
        for b in range(2):
            for k in range(20):
                if valid[b, k]:
                    x1, y1, x2, y2 = inp['boxes'][b, k, :4].tolist()
                    rois.append([b, x1 * W, y1 * H, x2 * W, y2 * H])
        fs = roi_align(dense.contiguous(), torch.tensor(rois), (1, 1), 1.0, -1, 'avg', True).flatten(1)
        ft = d.teacher.encode_image(inp['crops'][valid])
        lc = 1 - F.cosine_similarity(fs, ft, dim=-1).mean()
        t = similarity(d.vfm(inp['vfm']))
        q, k = out['context']
        s = (similarity(q) + similarity(k)) / 2
        lx = (t - s).norm(dim=-1).mean()
    assert losses['loss_content'].item() == pytest.approx(lc.item(), abs=1e-5)
    assert losses['loss_context'].item() == pytest.approx(0.1 * lx.item(), abs=1e-5)


def test_ensemble_hook_swaps_for_validation_and_checkpoint():
    from types import SimpleNamespace
    from declip_mm.engine.hooks.distill_hooks import DeCLIPEnsembleHook
    d = build_distiller('csa', alpha=0.7)
    with torch.no_grad():
        for p in d.student.parameters():
            p.add_(1.0)
    raw = {k: v.clone() for k, v in d.student.state_dict().items()}
    ens = d.ensembled_student_state()
    runner = SimpleNamespace(model=d)
    hook = DeCLIPEnsembleHook()
    hook.before_val_epoch(runner)
    assert all(torch.equal(v, ens[k]) for k, v in d.student.state_dict().items())
    hook.after_val_epoch(runner)
    assert all(torch.equal(v, raw[k]) for k, v in d.student.state_dict().items())
    ck = dict(state_dict=d.state_dict())
    DeCLIPEnsembleHook().before_save_checkpoint(runner, ck)
    assert torch.equal(ck['state_dict']['student.visual.trunk.blocks.0.attn.proj.weight'],
                       raw['visual.trunk.blocks.0.attn.proj.weight'])
    DeCLIPEnsembleHook(in_checkpoint=True).before_save_checkpoint(runner, ck)
    assert torch.allclose(ck['state_dict']['student.visual.trunk.blocks.0.attn.proj.weight'],
                          ens['visual.trunk.blocks.0.attn.proj.weight'])
