"""OV-DQUO (xiaomoguhz/OV-DQUO) -> declip_mm OVDQUO: synthetic checkpoints in the original's key layout
(``reference.ovdquo_vit_layout``, written from its model code and checked once against its ``state_dict()``), strict
load into the tiny config's model, pinned key pairs, the converted weights computing the original's formulas
(plain torch), round trip, the original file layout (``model`` / ``ema_model`` / ``args`` Namespace) on the command
line, and the converted checkpoint evaluated by tools/test.py."""
import argparse
import re
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from .conftest import REPO, converter
from .reference import eva_clip_visual, eva_rope_tables, ovdquo_tie, ovdquo_vit_layout, randomize

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
TINY = dict(width=64, depth=4, embed=32, grid=14, head_dim=16, d=256, ffn=256, enc=2, dec=2, queries=30,
            text_dim=32, vocab=5)  # the tiny config: 4 base classes + the wildcard in label_enc


def original_tiny(seed=0):
    p = randomize(ovdquo_vit_layout(**TINY), seed=seed)
    cos, sin = eva_rope_tables(14, 16)
    for k in p:
        if k.endswith('rope.freqs_cos'):
            p[k] = cos
        elif k.endswith('rope.freqs_sin'):
            p[k] = sin
    return ovdquo_tie(p, dec=TINY['dec'])


def _model(cfg_path=CFG):
    """The config's model (random text rows) in eval mode, and its parameter shapes."""
    from mmengine.registry import MODELS, DefaultScope
    import declip_mm  # noqa: F401
    from _common import shapes_of
    cfg = Config.fromfile(cfg_path)
    cfg.model.text_embeddings = None
    with DefaultScope.overwrite_default_scope('mmdet'), pytest.warns(UserWarning, match='random unit vectors'):
        model = MODELS.build(cfg.model).eval()
    return model, shapes_of(model)


@pytest.fixture(scope='module')
def converted():
    conv = converter('ovdquo_to_declip_mm')
    p = original_tiny()
    model, shapes = _model()
    out, report = conv.convert(p, shapes)
    model.load_state_dict(out, strict=True)
    return conv, p, model, out, report


# every mapping rule, pinned independently of the converter (the table of docs/detection.md)
PINNED = [
    ('backbone.0.visual.blocks.1.attn.q_proj.weight', 'backbone.visual.trunk.blocks.1.attn.q_proj.weight'),
    ('backbone.0.visual.blocks.0.mlp.w3.weight', 'backbone.visual.trunk.blocks.0.mlp.fc2.weight'),
    ('backbone.0.interpolate1.0.weight', 'neck.necks.0.branches.0.weight'),
    ('input_proj.2.0.weight', 'neck.necks.1.convs.2.conv.weight'),
    ('input_proj.1.1.bias', 'neck.necks.1.convs.1.gn.bias'),
    ('transformer.level_embed', 'level_embed'),
    ('transformer.encoder.layers.1.self_attn.sampling_offsets.bias',
     'encoder.layers.1.self_attn.sampling_offsets.bias'),
    ('transformer.encoder.layers.0.linear1.weight', 'encoder.layers.0.ffn.layers.0.0.weight'),
    ('transformer.encoder.layers.0.linear2.bias', 'encoder.layers.0.ffn.layers.1.bias'),
    ('transformer.encoder.layers.1.norm1.weight', 'encoder.layers.1.norms.0.weight'),
    ('transformer.encoder.layers.1.norm2.weight', 'encoder.layers.1.norms.1.weight'),
    ('transformer.decoder.layers.1.self_attn.in_proj_weight', 'decoder.layers.1.self_attn.attn.in_proj_weight'),
    ('transformer.decoder.layers.0.self_attn.out_proj.bias', 'decoder.layers.0.self_attn.attn.out_proj.bias'),
    ('transformer.decoder.layers.0.cross_attn.value_proj.weight', 'decoder.layers.0.cross_attn.value_proj.weight'),
    ('transformer.decoder.layers.1.norm2.weight', 'decoder.layers.1.norms.0.weight'),  # after self-attention
    ('transformer.decoder.layers.1.norm1.weight', 'decoder.layers.1.norms.1.weight'),  # after cross-attention
    ('transformer.decoder.layers.1.norm3.bias', 'decoder.layers.1.norms.2.bias'),
    ('transformer.decoder.layers.0.linear1.bias', 'decoder.layers.0.ffn.layers.0.0.bias'),
    ('transformer.decoder.layers.1.linear2.weight', 'decoder.layers.1.ffn.layers.1.weight'),
    ('transformer.decoder.ref_point_head.layers.1.weight', 'decoder.ref_point_head.layers.1.weight'),
    ('transformer.decoder.norm.weight', 'decoder.norm.weight'),
    ('transformer.tgt_embed.weight', 'query_embedding.weight'),
    ('transformer.enc_output.weight', 'memory_trans_fc.weight'),
    ('transformer.enc_output_norm.bias', 'memory_trans_norm.bias'),
    ('transformer.text_proj.layers.1.weight', 'text_proj.layers.1.weight'),
    ('label_enc.weight', 'dn_query_generator.label_embedding.weight'),
    ('class_embed.1.weight', 'bbox_head.cls_branches.1.weight'),
    ('bbox_embed.1.layers.2.weight', 'bbox_head.reg_branches.1.4.weight'),
    ('bbox_embed.0.layers.1.bias', 'bbox_head.reg_branches.0.2.bias'),
    ('transformer.enc_out_class_embed.bias', 'bbox_head.cls_branches.2.bias'),
    ('transformer.enc_out_bbox_embed.layers.0.weight', 'bbox_head.reg_branches.2.0.weight'),
]


def test_pinned_keys(converted):
    conv, p, model, out, report = converted
    for src, dst in PINNED:
        assert torch.equal(out[dst], p[src]), (src, dst)


def test_every_key_accounted_for(converted):
    conv, p, model, out, report = converted
    assert not report.missing and set(report.mapped) | set(report.dropped) == set(p)
    dropped = {k for k in p if 'rope.freqs' in k} | {k for k in p if k.startswith(('transformer.decoder.class_embed',
                                                                                     'transformer.decoder.bbox_embed'))}
    assert set(report.dropped) == dropped
    sd = model.state_dict()
    assert set(sd) == set(out)  # the strict load in the fixture: every weight of the model came from the file


def test_converted_weights_compute_the_original(converted):
    """EVA taps / dense map (original EVA formulas), pyramid + input projection, the shared objectness head, the
    per-layer box MLPs, the encoder heads and the text projection, in plain torch on the original's weights."""
    conv, p, model, out, report = converted
    g = torch.Generator().manual_seed(3)
    img = torch.randn(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        feats, clip = model.extract_feat(img)
    ref = eva_clip_visual(p, img, 4, taps=(1, 2), last='maskclip', prefix='backbone.0.visual.')
    taps = ref['taps'] + [ref['tokens'][:, 1:].transpose(1, 2).reshape(1, 64, 4, 4)]
    torch.testing.assert_close(clip['dense'], F.normalize(ref['dense'], dim=1), rtol=1e-4, atol=1e-5)
    pyr = [F.conv_transpose2d(taps[0], p['backbone.0.interpolate1.0.weight'], p['backbone.0.interpolate1.0.bias'],
                              stride=2), taps[1], F.max_pool2d(taps[2], 2)]
    for i, (a, x) in enumerate(zip(feats, pyr)):
        y = F.conv2d(x, p[f'input_proj.{i}.0.weight'], p[f'input_proj.{i}.0.bias'])
        y = F.group_norm(y, 32, p[f'input_proj.{i}.1.weight'], p[f'input_proj.{i}.1.bias'])
        torch.testing.assert_close(a, y, rtol=1e-4, atol=1e-4)

    def mlp(x, prefix, n):
        for j in range(n):
            x = F.linear(x, p[f'{prefix}.layers.{j}.weight'], p[f'{prefix}.layers.{j}.bias'])
            x = F.relu(x) if j < n - 1 else x
        return x
    h = torch.randn(5, 256, generator=g)
    head = model.bbox_head
    with torch.no_grad():
        for lvl in range(2):
            torch.testing.assert_close(head.cls_branches[lvl](h), F.linear(h, p['class_embed.0.weight'],
                                                                            p['class_embed.0.bias']))
            torch.testing.assert_close(head.reg_branches[lvl](h), mlp(h, f'bbox_embed.{lvl}', 3))
        torch.testing.assert_close(head.cls_branches[2](h), F.linear(h, p['transformer.enc_out_class_embed.weight'],
                                                                      p['transformer.enc_out_class_embed.bias']))
        torch.testing.assert_close(head.reg_branches[2](h), mlp(h, 'transformer.enc_out_bbox_embed', 3))
        t = torch.randn(3, 32, generator=g)
        torch.testing.assert_close(model.text_proj(t), mlp(t, 'transformer.text_proj', 2))


def test_round_trip(converted):
    """declip_mm -> original writes every original key (aliases, RoPE tables recomputed) with the same values, and
    converting that back gives the same declip_mm weights."""
    conv, p, model, out, report = converted
    back, rep = conv.revert(model.state_dict(), head_dim=16)
    assert set(back) == set(p)
    for k in p:
        torch.testing.assert_close(back[k], p[k], rtol=0, atol=0, msg=k)
    again, _ = conv.convert(back)
    assert set(again) == set(out) and all(torch.equal(again[k], out[k]) for k in out)


def test_bad_sources_are_named(converted):
    conv, p, model, out, report = converted
    from _common import ConversionError, shapes_of
    with pytest.raises(ConversionError, match=r'transformer\.encoder\.layers\.0\.mystery\.weight'):
        conv.convert(dict(p, **{'transformer.encoder.layers.0.mystery.weight': torch.zeros(1)}))
    with pytest.raises(ConversionError, match=r'backbone\.visual\.trunk\.blocks\.4'):  # a block the model lacks
        conv.convert(dict(p, **{'backbone.0.visual.blocks.4.norm1.weight': torch.zeros(64)}), shapes_of(model))
    with pytest.raises(ConversionError, match=r'dn_query_generator\.label_embedding\.weight'):  # vocabulary size
        conv.convert(dict(p, **{'label_enc.weight': torch.zeros(49, 256)}), shapes_of(model))
    with pytest.raises(ConversionError, match=r'query_embedding\.weight'):  # missing from the file
        conv.convert({k: v for k, v in p.items() if k != 'transformer.tgt_embed.weight'}, shapes_of(model))
    bad = dict(p)
    bad['class_embed.1.weight'] = p['class_embed.1.weight'] + 1
    with pytest.raises(ConversionError, match=r'class_embed\.1\.weight differs'):
        conv.convert(bad)
    bad = dict(p)
    bad['transformer.decoder.bbox_embed.0.layers.0.bias'] = p['bbox_embed.0.layers.0.bias'] + 1
    with pytest.raises(ConversionError, match=r'transformer\.decoder\.bbox_embed\.0\.layers\.0\.bias differs'):
        conv.convert(bad)


def _original_file(path, p, ema_p):
    """As OV-DQUO's main.py saves a checkpoint (weights of the model and of its EMA, optimiser, scheduler, args)."""
    args = argparse.Namespace(lr=1e-4, backbone='EVA02-CLIP-B-16', lr_backbone_names=['backbone.0'], use_ema=True,
                              ema_decay=0.99996, resolution=[1024, 1024], options=None)
    torch.save({'model': p, 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4, 'betas': (0.9, 0.999)}]},
                'lr_scheduler': {'step_size': 50, 'last_epoch': 35}, 'epoch': 34, 'args': args,
                'ema_model': ema_p}, path)


def test_original_file_on_the_command_line(tmp_path, capsys):
    """``--ema`` takes ``ema_model`` (what the original evaluates), without it ``model``; the ``args`` Namespace is
    the one class allowed beyond the weights-only allow-list; ``--reverse`` writes both entries loadable by
    ``torch.load(weights_only=True)``."""
    conv = converter('ovdquo_to_declip_mm')
    p, ema_p = original_tiny(0), original_tiny(1)
    src = str(tmp_path / 'checkpoint0034.pth')
    _original_file(src, p, ema_p)
    for flag, want in (([], p), (['--ema'], ema_p)):
        dst = str(tmp_path / f'out{len(flag)}.pth')
        conv.main([src, dst, '--config', CFG] + flag)
        got = torch.load(dst, weights_only=True)
        assert got['meta']['weights'] == ('ema_model' if flag else 'model') and got['meta']['epoch'] == 34
        assert torch.equal(got['state_dict']['query_embedding.weight'], want['transformer.tgt_embed.weight'])
    assert 'pass --ema' in capsys.readouterr().out
    # a file with only the raw weights: --ema is an error naming the file
    src2 = str(tmp_path / 'no_ema.pth')
    torch.save({'model': p, 'epoch': 3}, src2)
    from _common import ConversionError
    with pytest.raises(ConversionError, match=r"no_ema\.pth has no 'ema_model'"):
        conv.main([src2, str(tmp_path / 'x.pth'), '--ema'])
    # reverse: a declip_mm checkpoint written by the EMA configs (EMA in state_dict, raw in ema_state_dict)
    ours_ema = torch.load(str(tmp_path / 'out1.pth'), weights_only=True)['state_dict']
    ours_raw = torch.load(str(tmp_path / 'out0.pth'), weights_only=True)['state_dict']
    run = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': ours_ema, 'ema_state_dict': dict({'module.' + k: v for k, v in ours_raw.items()},
                                                                 steps=torch.tensor(5))}, run)
    back = str(tmp_path / 'back.pth')
    conv.main([run, back, '--reverse', '--head-dim', '16'])
    b = torch.load(back, weights_only=True)
    assert set(b) == {'model', 'ema_model'} and set(b['model']) == set(p)
    assert torch.equal(b['model']['label_enc.weight'], p['label_enc.weight'])
    assert torch.equal(b['ema_model']['label_enc.weight'], ema_p['label_enc.weight'])


def _test_tool_equals_strict_model(cfg_path, ckpt, emb, root, tmp_path):
    """tools/test.py on ``ckpt`` gives base / novel AP50 and the predictions of the strictly loaded model (mmengine's
    load_from is not strict: a misnamed key would leave random weights and still give metrics)."""
    import importlib.util
    import pickle
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, MODELS, DefaultScope
    spec = importlib.util.spec_from_file_location('_tools_test', osp.join(REPO, 'tools', 'test.py'))
    test_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_tool)
    out_pkl = str(tmp_path / 'preds.pkl')
    opts = ['--cfg-options', f'test_dataloader.dataset.data_root={root}',
            f'test_evaluator.ann_file={root}annotations/val.json', f'model.text_embeddings={emb}']
    metrics = test_tool.main([cfg_path, ckpt, '--work-dir', str(tmp_path / 'test'), '--out', out_pkl] + opts)
    assert {'coco/novel_ap50', 'coco/base_ap50'} <= set(metrics)
    with open(out_pkl, 'rb') as f:
        dumped = pickle.load(f)
    cfg = Config.fromfile(cfg_path)
    cfg.model.text_embeddings = emb
    cfg.test_dataloader.dataset.data_root = root
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model).eval()
        model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'], strict=True)
        ds = DATASETS.build(cfg.test_dataloader.dataset)
        with torch.no_grad():
            preds = model.test_step(pseudo_collate([ds[i] for i in range(len(ds))]))
    assert len(dumped) == len(preds) == 2
    for d, r in zip(dumped, preds):
        torch.testing.assert_close(d['pred_instances']['scores'], r.pred_instances.scores)
        torch.testing.assert_close(d['pred_instances']['bboxes'], r.pred_instances.bboxes)


def test_converted_checkpoint_through_test_tool(tmp_path):
    """An original-layout file converted on the command line evaluates with tools/test.py and the tiny config."""
    import importlib.util
    from declip_mm.datasets.synthetic_det import make_synthetic_ov_det
    root = str(tmp_path / 'synth') + '/'
    make_synthetic_ov_det(root, num_train=2, num_val=2, size=128, seed=0, pseudo=False)
    gen = importlib.util.spec_from_file_location('_gen', osp.join(REPO, 'tools', 'gen_text_embeddings.py'))
    gen_mod = importlib.util.module_from_spec(gen)
    gen.loader.exec_module(gen_mod)
    emb = str(tmp_path / 'text.pt')
    gen_mod.main(['--classes', 'circle,square,triangle,cross,ring,diamond', '--extra-classes', 'object',
                  '--out', emb, '--tiny', 'eva', '--device', 'cpu', '--no-progress'])
    src, dst = str(tmp_path / 'checkpoint.pth'), str(tmp_path / 'ovdquo_declip-mm.pth')
    _original_file(src, original_tiny(0), original_tiny(1))
    converter('ovdquo_to_declip_mm').main([src, dst, '--ema'])
    _test_tool_equals_strict_model(CFG, dst, emb, root, tmp_path)


@pytest.mark.parametrize('name,arch', [
    ('ovdquo_eva02-b16-clipself_8xb4-35e_ov-lvis-1024.py', dict(width=768, depth=12, embed=512, grid=14, patch=16)),
    ('ovdquo_eva02-l14-336-clipself_8xb4-35e_ov-lvis-896.py', dict(width=1024, depth=24, embed=768, grid=24,
                                                                   patch=14)),
])
def test_release_layouts_convert_strictly(name, arch):
    """The released B/16 and L/14 files' layouts (the original's configs: 6 + 6 layers, FFN 2048, 1000 queries, 100
    sampled classes + wildcard) map onto the models the clipself configs build: every weight, every shape."""
    from mmengine.registry import MODELS, DefaultScope
    import declip_mm  # noqa: F401
    from _common import shapes_of
    cfg = Config.fromfile(osp.join(REPO, 'configs/ovdquo', name))
    cfg.model.text_embeddings = None
    cfg.model.pop('wildcard_embeddings')
    cfg.model.backbone.checkpoint = None
    import timm.layers.weight_init as wi
    orig = wi._trunc_normal_
    wi._trunc_normal_ = lambda t, mean, std, a, b: t.normal_(mean, std).clamp_(a, b)  # fast init
    try:
        with DefaultScope.overwrite_default_scope('mmdet'), pytest.warns(UserWarning, match='random unit vectors'):
            shapes = shapes_of(MODELS.build(cfg.model))
    finally:
        wi._trunc_normal_ = orig
    layout = ovdquo_vit_layout(arch['width'], arch['depth'], arch['embed'], arch['grid'], 64, vocab=101,
                               patch=arch['patch'])
    src = {k: torch.empty(s, device='meta') for k, s in layout.items()}  # shapes only (the value checks need data)
    conv = converter('ovdquo_to_declip_mm')
    from _common import convert_keys
    out, report = convert_keys(src, conv.rules(conv.num_decoder_layers(src)), conv.DROPS, 'release', shapes)
    assert not report.missing and len(out) == len(shapes)


# ------------------------------------------------------------------------------------------ ResNet (OV-COCO RN50)
RN_CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-r50-clip_1xb4-1e_ov-shapes-synthetic.py')
RN_TINY = dict(width=8, layers=(1, 1, 1, 1), embed=32, grid=3, text_width=32, text_layers=2, d=256, ffn=256, enc=2,
               dec=2, queries=30, vocab=5)  # the tiny RN config: tiny_resnet_overrides(), 4 base classes + wildcard


def original_tiny_rn(seed=0):
    from .reference import ovdquo_rn_layout, ovdquo_tie_rn
    p = randomize(ovdquo_rn_layout(**RN_TINY), seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    for k in p:  # BN scales around 1 (the layout's random default is ~0.05: features would vanish)
        if k.startswith('backbone.0.body.') and ('.bn' in k or 'downsample.1' in k) and k.endswith('.weight'):
            p[k] = 1 + 0.2 * torch.randn(p[k].shape, generator=g)
    return ovdquo_tie_rn(ovdquo_tie(p, dec=RN_TINY['dec']))


@pytest.fixture(scope='module')
def converted_rn():
    conv = converter('ovdquo_to_declip_mm')
    p = original_tiny_rn()
    p['backbone.0.body.layer1.0.bn1.num_batches_tracked'] = torch.tensor(0)  # a stray BN counter is dropped
    model, shapes = _model(RN_CFG)
    out, report = conv.convert(p, shapes)
    model.load_state_dict(out, strict=True)
    return conv, p, model, out, report


RN_PINNED = [  # the ResNet rows of the key table (docs/detection.md), independently of the converter
    ('backbone.0.body.conv1.weight', 'backbone.visual.conv1.weight'),
    ('backbone.0.body.bn3.running_var', 'backbone.visual.bn3.running_var'),
    ('backbone.0.body.layer3.0.downsample.1.running_mean', 'backbone.visual.layer3.0.downsample.1.running_mean'),
    ('backbone.0.body.layer4.0.conv2.weight', 'backbone.visual.layer4.0.conv2.weight'),
    ('backbone.0.attn_pool.positional_embedding', 'backbone.visual.attnpool.positional_embedding'),
    ('backbone.0.attn_pool.c_proj.bias', 'backbone.visual.attnpool.c_proj.bias'),
    ('input_proj.0.0.weight', 'neck.convs.0.conv.weight'),
    ('input_proj.1.1.bias', 'neck.convs.1.gn.bias'),
    ('input_proj.2.0.weight', 'neck.extra_convs.0.conv.weight'),  # the conv3x3 s2 on raw C4
    ('input_proj.2.1.weight', 'neck.extra_convs.0.gn.weight'),
    ('transformer.tgt_embed.weight', 'query_embedding.weight'),
    ('label_enc.weight', 'dn_query_generator.label_embedding.weight'),
    ('class_embed.1.bias', 'bbox_head.cls_branches.1.bias'),
    ('transformer.enc_out_bbox_embed.layers.2.weight', 'bbox_head.reg_branches.2.4.weight'),
]


def test_rn_pinned_keys_and_accounting(converted_rn):
    conv, p, model, out, report = converted_rn
    for src, dst in RN_PINNED:
        assert torch.equal(out[dst], p[src]), (src, dst)
    assert not report.missing and set(report.mapped) | set(report.dropped) == set(p)
    dropped = {k for k in p if k.startswith(('backbone.0.layer4.', 'classifier.', 'transformer.decoder.class_embed',
                                             'transformer.decoder.bbox_embed'))}
    assert set(report.dropped) == dropped | {'backbone.0.body.layer1.0.bn1.num_batches_tracked'}
    assert any(k.startswith('classifier.transformer.resblocks.') for k in dropped)
    assert set(model.state_dict()) == set(out)


def test_rn_converted_weights_compute_the_original(converted_rn):
    """C3 / C4 from the original's frozen-BN ResNet formulas (plain torch), the input projection with the third
    level = conv3x3 s2 + GN of the raw C4 (a model that fed C5 or the projected C4 fails), on the original's weights."""
    from det.clip_rn_reference import resnet_stages
    conv, p, model, out, report = converted_rn
    img = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        feats, clip = model.extract_feat(img)
    sd = {'visual.' + k[len('backbone.0.body.'):]: v for k, v in p.items() if k.startswith('backbone.0.body.')}
    _, c3, c4, c5 = resnet_stages(img, sd)
    for a, b in zip(clip['maps'], (c3, c4, c5)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    def proj(x, i, **kw):
        y = F.conv2d(x, p[f'input_proj.{i}.0.weight'], p[f'input_proj.{i}.0.bias'], **kw)
        return F.group_norm(y, 32, p[f'input_proj.{i}.1.weight'], p[f'input_proj.{i}.1.bias'])
    ref = [proj(c3, 0), proj(c4, 1), proj(c4, 2, stride=2, padding=1)]
    assert len(feats) == 3
    for a, b in zip(feats, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_rn_round_trip_and_bad_sources(converted_rn):
    """declip_mm -> original writes every original key (layer4 twice, classifier.* from the text tower) with the
    same values; back again gives the same weights.  Unknown keys and a layer4 copy that differs are named."""
    conv, p, model, out, report = converted_rn
    text = {k[len('classifier.'):]: v for k, v in p.items() if k.startswith('classifier.')}
    text['visual.conv1.weight'] = torch.zeros(1)  # an OpenAI file's image tower is ignored
    back, rep = conv.revert(model.state_dict(), text_tower=text)
    want = {k for k in p if not k.endswith('num_batches_tracked')}
    assert set(back) == want
    for k in want:
        torch.testing.assert_close(back[k], p[k], rtol=0, atol=0, msg=k)
    again, _ = conv.convert(back)
    assert set(again) == set(out) and all(torch.equal(again[k], out[k]) for k in out)
    without, _ = conv.revert(model.state_dict())
    assert set(without) == {k for k in want if not k.startswith('classifier.')}
    from _common import ConversionError, shapes_of
    clean = {k: v for k, v in p.items() if not k.endswith('num_batches_tracked')}
    for bad in ('backbone.0.body.attnpool.q_proj.weight', 'backbone.0.attn_pool.mystery', 'classifier.logit_scale',
                'backbone.0.body.layer5.0.conv1.weight'):
        with pytest.raises(ConversionError, match=re.escape(bad)):
            conv.convert(dict(clean, **{bad: torch.zeros(1)}))
    broken = dict(clean)
    broken['backbone.0.layer4.0.conv1.weight'] = clean['backbone.0.layer4.0.conv1.weight'] + 1
    with pytest.raises(ConversionError, match=r'backbone\.0\.layer4\.0\.conv1\.weight differs'):
        conv.convert(broken)
    with pytest.raises(ConversionError, match=r'neck\.extra_convs\.0\.conv\.weight'):  # RN50x4 widths vs tiny model
        wide = dict(clean, **{'input_proj.2.0.weight': torch.zeros(256, 1280, 3, 3)})
        conv.convert(wide, shapes_of(model))


def test_rn_converted_checkpoint_through_test_tool(tmp_path):
    """An original-layout ResNet file converted on the command line (--ema, --config check) evaluates with
    tools/test.py and the tiny RN config, and gives what the strictly loaded converted model predicts."""
    from declip_mm.datasets.synthetic_det import make_synthetic_ov_det
    root = str(tmp_path / 'synth') + '/'
    make_synthetic_ov_det(root, num_train=2, num_val=2, size=128, seed=0, pseudo=False)
    emb = str(tmp_path / 'text.pt')
    g = torch.Generator().manual_seed(0)
    torch.save({n: torch.randn(32, generator=g) for n in ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond',
                                                          'object', 'background')}, emb)
    src, dst = str(tmp_path / 'checkpoint.pth'), str(tmp_path / 'ovdquo_rn_declip-mm.pth')
    _original_file(src, original_tiny_rn(0), original_tiny_rn(1))
    converter('ovdquo_to_declip_mm').main([src, dst, '--ema', '--config', RN_CFG])
    _test_tool_equals_strict_model(RN_CFG, dst, emb, root, tmp_path)
    # the EMA entry was converted: its query table is in the file
    ema = original_tiny_rn(1)
    assert torch.equal(torch.load(dst, weights_only=True)['state_dict']['query_embedding.weight'],
                       ema['transformer.tgt_embed.weight'])


@pytest.mark.parametrize('name,arch', [
    ('ovdquo_r50-clip_8xb4-30e_ov-coco.py', dict(width=64, layers=(3, 4, 6, 3), embed=1024, grid=7, text_width=512)),
    ('ovdquo_r50x4-clip_8xb3-30e_ov-coco.py', dict(width=80, layers=(4, 6, 10, 6), embed=640, grid=9,
                                                   text_width=640)),
])
def test_rn_release_layouts_convert_strictly(name, arch):
    """The released OV-COCO RN50 / RN50x4 files' layouts (OpenAI's ModifiedResNets, 12-layer text towers, 6 + 6
    layers, 1000 queries, 48 base classes + wildcard in label_enc) map onto the models the RN configs build: every
    weight, every shape (through the converter's --config path)."""
    import warnings
    from .reference import ovdquo_rn_layout
    conv = converter('ovdquo_to_declip_mm')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        shapes = conv.build_target_shapes(osp.join(REPO, 'configs/ovdquo', name))
    layout = ovdquo_rn_layout(arch['width'], arch['layers'], arch['embed'], arch['grid'], arch['text_width'], 12)
    src = {k: torch.empty(s, device='meta') for k, s in layout.items()}  # shapes only
    from _common import convert_keys
    n_in = 2
    rules = tuple(conv.resnet_rules(n_in)) + tuple(r for r in conv.rules(conv.num_decoder_layers(src))
                                                   if not r[0].startswith(('backbone', 'input_proj')))
    out, report = convert_keys(src, rules, conv.DROPS + conv.RESNET_DROPS, 'release', shapes)
    assert not report.missing and len(out) == len(shapes)
    assert shapes['neck.extra_convs.0.conv.weight'][1] == 16 * arch['width']  # conv3x3 on C4
