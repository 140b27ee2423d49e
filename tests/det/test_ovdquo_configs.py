"""The OV-DQUO configs carry the original's settings (values written here from its config/OV_LVIS/*.py, config lines
1-88 common to all four, scripts and main.py), the optimiser gives the ViT pyramid's ConvT its own learning rate,
and the EMA averages every tensor as the original's EMA does (StateDictEMA vs a hand computation)."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict

from .conftest import REPO

CFG_DIR = osp.join(REPO, 'configs/ovdquo')
FULL = sorted(osp.basename(p) for p in glob.glob(osp.join(CFG_DIR, 'ovdquo_eva02-*.py')))

# the original's ViT configs (OVDQUO_ViTB16.py / OVDQUO_ViTL14.py) and its OV-COCO training (OVDQUO_RN50.py)
B16 = dict(model='EVA02-B-16', taps=(5, 7, 11), width=768, text_dim=512, resolution=1024)
L14 = dict(model='EVA02-L-14-336', taps=(10, 14, 23), width=1024, text_dim=768, resolution=896)
LVIS = dict(epochs=35, first_eval=20, novel_boost=8.0, num_sampled=100, pool='all', max_det=300,
            dataset='OVLVISV1Dataset', pseudo='annotations/OW_LVIS_R3.json', metric='OVLVISMetric',
            headline='lvis/bbox_APr', novel='lvis_v1')
COCO = dict(epochs=30, first_eval=15, novel_boost=3.0, num_sampled=None, pool='base', max_det=100,
            dataset='OVCocoDataset', pseudo='annotations/OW_COCO_R2.json', metric='OVCocoAP50Metric',
            headline='coco/novel_ap50', novel='ov_coco')
CONFIGS = {
    'ovdquo_eva02-b16-clipself_8xb4-35e_ov-lvis-1024.py': (B16, LVIS, 'maskclip', 'eva_vitb16_lvis_clipself_patches'),
    'ovdquo_eva02-l14-336-clipself_8xb4-35e_ov-lvis-896.py':
        (L14, LVIS, 'maskclip', 'eva_vitl14_lvis_clipself_patches'),
    'ovdquo_eva02-b16-declip_8xb4-35e_ov-lvis-1024.py': (B16, LVIS, 'csa', 'declip_eva02_b16'),
    'ovdquo_eva02-l14-336-declip_8xb4-35e_ov-lvis-896.py': (L14, LVIS, 'csa', 'declip_eva02_l14_336'),
    'ovdquo_eva02-b16-declip_8xb4-30e_ov-coco-1024.py': (B16, COCO, 'csa', 'declip_eva02_b16'),
    'ovdquo_eva02-l14-336-declip_8xb4-30e_ov-coco-896.py': (L14, COCO, 'csa', 'declip_eva02_l14_336'),
}


def _cfg(name):
    return Config.fromfile(osp.join(CFG_DIR, name))


def test_every_full_config_is_listed():
    assert sorted(CONFIGS) == FULL


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_original_settings(name):
    arch, data, dense_mode, ckpt = CONFIGS[name]
    cfg = _cfg(name)
    m = cfg.model
    # model (the original's DINO block: 1000 queries, 6 + 6 layers, FFN 2048, 3 levels, 100 DN queries)
    assert m.type == 'OVDQUO' and m.num_queries == 1000 and m.num_feature_levels == 3
    assert (m.encoder.num_layers, m.decoder.num_layers) == (6, 6)
    assert m.encoder.layer_cfg.ffn_cfg.feedforward_channels == 2048
    assert m.decoder.layer_cfg.ffn_cfg.feedforward_channels == 2048
    assert m.dn_cfg.group_cfg.num_dn_queries == 100 and (m.dn_cfg.label_noise_scale, m.dn_cfg.box_noise_scale) == \
        (0.5, 1.0)
    assert m.positional_encoding.temperature == 20
    b = m.backbone
    assert (b.model_name, tuple(b.out_indices), b.last_feat_mode, b.dense_mode) == \
        (arch['model'], arch['taps'], 'maskclip', dense_mode)
    assert osp.basename(b.checkpoint).startswith(ckpt) and b.frozen
    assert m.neck.necks[0].in_channels == arch['width'] and m.neck.necks[0].rescales == (2, 1, 0.5)
    assert m.neck.necks[1].in_channels == [arch['width']] * 3 and m.neck.necks[1].bias
    # vocabulary, query assignment, outputs
    assert m.novel_boost == data['novel_boost'] and m.novel_classes == data['novel']
    assert (m.category_sampler.num_sampled, m.category_sampler.pool) == (data['num_sampled'], data['pool'])
    assert m.wildcard == 'object' and m.test_cfg.max_per_img == data['max_det']
    assert m.test_cfg.nms.iou_threshold == 0.5 and m.test_cfg.score_thr == 0.001
    # input: long side R padded to R x R after normalisation with ImageNet statistics, as the original's ViT path
    R = arch['resolution']
    assert m.data_preprocessor.pad_size_divisor == R and m.data_preprocessor.pad_value == 0
    assert m.data_preprocessor.mean == [123.675, 116.28, 103.53]
    test_resize = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'DETRResize'][0]
    assert test_resize.scale == R and test_resize.max_size == R
    # data
    tr = cfg.train_dataloader
    assert tr.dataset.type == data['dataset'] and tr.dataset.pseudo_ann_file == data['pseudo']
    assert tr.batch_size == 4 and tr.drop_last and cfg.val_dataloader.batch_size == 1
    if data is LVIS:  # repeat-factor sampler with the threshold the published models used (see its docs)
        assert tr.sampler.type == 'RepeatFactorMultinomialSampler' and tr.sampler.repeat_thr == 1.0
    else:
        assert tr.sampler.type == 'DefaultSampler' and tr.sampler.shuffle
    assert cfg.val_evaluator.type == data['metric'] and cfg.test_evaluator.type == data['metric']
    if data is LVIS:
        assert cfg.val_evaluator.metric == 'bbox'  # box APr, unlike F-ViT's mask APr
    # schedule: AdamW 1e-4, wd 1e-4, eps 1e-6, clip 0.1, constant LR, ConvT x0.1, EMA 0.99996, bf16
    assert cfg.train_cfg.max_epochs == data['epochs'] and cfg.train_cfg.val_begin == data['first_eval']
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.dtype == 'bfloat16'
    assert (ow.optimizer.type, ow.optimizer.lr, ow.optimizer.weight_decay, ow.optimizer.eps) == \
        ('AdamW', 1e-4, 1e-4, 1e-6)
    assert ow.clip_grad.max_norm == 0.1 and cfg.param_scheduler == []
    ema = [h for h in cfg.custom_hooks if h.type == 'EMAHook'][0]
    assert ema.momentum == pytest.approx(1 - 0.99996) and ema.update_buffers
    assert {h.type for h in cfg.custom_hooks} == {'EMAHook', 'OVClassCheckHook'}
    assert cfg.default_hooks.checkpoint.save_best == data['headline']
    assert cfg.randomness.seed == 42 and cfg.randomness.diff_rank_seed


def _narrow_model(name):
    """The config's model with the narrow CLIP trunk of tests/test_all_configs_build.py (depth and taps kept)."""
    import importlib.util
    from mmengine.registry import MODELS, init_default_scope
    spec = importlib.util.spec_from_file_location('_all_cfgs', osp.join(REPO, 'tests', 'test_all_configs_build.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = _cfg(name)
    init_default_scope('mmdet')
    state = dict(narrowed=False, clip=[])
    mcfg = mod.fix_widths(mod.shrink(copy.deepcopy(cfg.model.to_dict()), state), state['narrowed'])
    with pytest.warns(UserWarning, match='random unit vectors'):
        return cfg, MODELS.build(ConfigDict(mcfg))


@pytest.fixture(scope='module')
def lvis_b16():
    import timm.layers.weight_init as wi
    orig = wi._trunc_normal_
    wi._trunc_normal_ = lambda t, mean, std, a, b: t.normal_(mean, std).clamp_(a, b)  # fast init (as the build test)
    try:
        return _narrow_model('ovdquo_eva02-b16-declip_8xb4-35e_ov-lvis-1024.py')
    finally:
        wi._trunc_normal_ = orig


def test_optimizer_gives_the_pyramid_convt_its_own_lr(lvis_b16):
    """Without CUDA the AMP wrapper becomes a plain one (tools/train.py's resolve_amp); the parameter groups are the
    same: the ConvT at 1e-5 (the original's lr_backbone), everything else that trains at 1e-4, wd 1e-4 on all."""
    from mmengine.optim import build_optim_wrapper
    from declip_mm.engine.amp import resolve_amp
    cfg, model = lvis_b16
    cfg = copy.deepcopy(cfg)
    assert resolve_amp(cfg, cuda=False) == 'float32'
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    lr_of = {}
    for g in ow.optimizer.param_groups:
        for p in g['params']:
            lr_of[id(p)] = (g['lr'], g['weight_decay'], g['eps'])
    named = dict(model.named_parameters())
    convt = [n for n in named if n.startswith('neck.necks.0.')]
    assert convt == ['neck.necks.0.branches.0.weight', 'neck.necks.0.branches.0.bias']
    for n, p in named.items():
        if not p.requires_grad:
            continue
        lr, wd, eps = lr_of[id(p)]
        assert lr == pytest.approx(1e-5 if n in convt else 1e-4), n
        assert wd == pytest.approx(1e-4) and eps == 1e-6, n
    assert {n.split('.')[0] for n, p in named.items() if not p.requires_grad} == {'backbone'}  # frozen CLIP only


def test_ema_update_counts_follow_the_original(lvis_b16):
    """The config's EMA: the shared objectness Linear 12 updates per step (as the original, whose state dict lists it
    under class_embed.0-5 and transformer.decoder.class_embed.0-5), each decoder box MLP 2, the encoder heads and
    everything else 1; the aliases cls_branches.1-5 are not updated again."""
    from mmengine.registry import MODELS
    cfg, model = lvis_b16
    hook = [h for h in cfg.custom_hooks if h.type == 'EMAHook'][0].to_dict()
    args = {k: v for k, v in hook.items() if k not in ('type', 'ema_type', 'priority', 'strict_load', 'begin_iter',
                                                       'begin_epoch')}
    ema = MODELS.build(dict(type=hook['ema_type'], model=model, **args))
    counts = ema.update_counts
    assert counts['bbox_head.cls_branches.0.weight'] == counts['bbox_head.cls_branches.0.bias'] == 12
    assert not any(k.startswith(f'bbox_head.cls_branches.{i}.') for i in range(1, 6) for k in counts)
    assert counts['bbox_head.cls_branches.6.weight'] == 1  # the encoder's own copy
    for i in range(6):
        assert counts[f'bbox_head.reg_branches.{i}.0.weight'] == 2
    assert counts['bbox_head.reg_branches.6.0.weight'] == 1
    assert counts['query_embedding.weight'] == counts['text_proj.layers.0.weight'] == 1
    assert sum(n > 1 for n in counts.values()) == 2 + 6 * 6  # cls weight/bias + 6 MLPs x 3 layers x (w, b)


def test_state_dict_ema_against_hand_computation():
    """avg <- src + (1 - m)^n (avg - src) with n the tensor's update count: a shared module counts once (not once per
    name, as a plain walk over the state dict does), unless ``repeats`` says otherwise; buffers are averaged too."""
    from declip_mm.engine.ema import StateDictEMA
    torch.manual_seed(0)
    shared = torch.nn.Linear(3, 1)
    net = torch.nn.Module()
    net.cls = torch.nn.ModuleList([shared, shared, torch.nn.Linear(3, 1)])
    net.reg = torch.nn.ModuleList([torch.nn.Linear(3, 2) for _ in range(3)])
    net.bn = torch.nn.BatchNorm1d(2)
    m = 0.25
    for repeats, want in [(None, dict(cls0=1, reg0=1, reg2=1)),
                          ({r'cls\.0\.': 4, r'reg\.[0-1]\.': 2}, dict(cls0=4, reg0=2, reg2=1))]:
        ema = StateDictEMA(net, momentum=m, update_buffers=True, repeats=repeats)
        ema.update_parameters(net)  # step 0: copy
        before = {k: v.clone() for k, v in ema.module.state_dict().items()}
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
            net.bn.running_mean.add_(2.0)
        ema.update_parameters(net)
        after = ema.module.state_dict()
        src = net.state_dict()
        for key, n in [('cls.0.weight', want['cls0']), ('cls.1.weight', want['cls0']), ('cls.2.weight', 1),
                       ('reg.0.weight', want['reg0']), ('reg.2.bias', want['reg2']), ('bn.running_mean', 1)]:
            ref = src[key] + (1 - m) ** n * (before[key] - src[key])
            torch.testing.assert_close(after[key], ref, msg=f'{key} (n={n})')
        assert int(after['bn.num_batches_tracked']) == int(before['bn.num_batches_tracked'])  # integers not averaged
    with pytest.raises(ValueError, match='match no tensor'):
        StateDictEMA(net, momentum=m, update_buffers=True, repeats={r'bbox_head\.': 2})


def test_ema_through_train_and_test_tools(synthetic_det, tmp_path):
    """The configs' EMA hook on the tiny model: tools/train.py saves the EMA weights as ``state_dict`` (raw ones in
    ``ema_state_dict``), and tools/test.py evaluates exactly those (as the original evaluates its EMA model), also
    when the backbone file named in the config is absent (the checkpoint fills it)."""
    import pickle
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, MODELS, DefaultScope
    from .conftest import load_tool
    root = synthetic_det['root'] + '/'
    derived = tmp_path / 'ovdquo_tiny_ema.py'
    derived.write_text(
        f"_base_ = [{osp.join(CFG_DIR, 'ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')!r}]\n"
        "custom_hooks = [dict(type='OVClassCheckHook'), dict(type='EMAHook', ema_type='StateDictEMA', momentum=0.5,\n"
        "                     update_buffers=True, repeats={r'bbox_head\\.cls_branches\\.0\\.': 4})]\n")
    ann = f'{root}annotations/val.json'
    opts = ['--cfg-options', f'data_root={root}', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            f'model.text_embeddings={synthetic_det["text_embeddings"]}', 'train_cfg.val_interval=2']
    work = str(tmp_path / 'work')
    runner = load_tool('tools/train.py').main([str(derived), '--work-dir', work, '--cfg-options',
                                               'train_dataloader.batch_size=2'] + opts[1:])
    assert runner.iter >= 2  # the EMA averaged at least once after its initial copy
    from declip_mm.utils.run_checkpoints import load_checkpoint_file
    ckpt = load_checkpoint_file(osp.join(work, 'epoch_1.pth'), map_location='cpu')  # weights_only=True
    sd, raw = ckpt['state_dict'], ckpt['ema_state_dict']
    k = 'query_embedding.weight'
    assert not torch.equal(sd[k], raw['module.' + k])  # the EMA (momentum 0.5) differs from the raw weights
    out_pkl = str(tmp_path / 'preds.pkl')
    load_tool('tools/test.py').main([str(derived), osp.join(work, 'epoch_1.pth'), '--work-dir', str(tmp_path / 't'),
                                     '--out', out_pkl] + opts + ['model.backbone.checkpoint=checkpoints/absent.pt'])
    with open(out_pkl, 'rb') as f:
        dumped = pickle.load(f)
    cfg = Config.fromfile(str(derived))
    cfg.model.text_embeddings = synthetic_det['text_embeddings']
    cfg.test_dataloader.dataset.data_root = root
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model).eval()
        model.load_state_dict(sd, strict=True)  # the EMA weights
        ds = DATASETS.build(cfg.test_dataloader.dataset)
        with torch.no_grad():
            preds = model.test_step(pseudo_collate([ds[i] for i in range(len(ds))]))
    assert len(dumped) == len(preds)
    for d, r in zip(dumped, preds):
        torch.testing.assert_close(d['pred_instances']['scores'], r.pred_instances.scores)
        torch.testing.assert_close(d['pred_instances']['bboxes'], r.pred_instances.bboxes)


# the original's OV-COCO ResNet configs (config/OV_COCO/OVDQUO_RN50.py, OVDQUO_RN50x4.py; scripts/OV-COCO/*.sh)
RN = {
    'ovdquo_r50-clip_8xb4-30e_ov-coco.py': dict(model='RN50', in_channels=[512, 1024], batch=4,
                                                prompt='region_prompt_R50.pth', clip='RN50.pt'),
    'ovdquo_r50x4-clip_8xb3-30e_ov-coco.py': dict(model='RN50x4', in_channels=[640, 1280], batch=3,
                                                  prompt='region_prompt_R50x4.pth', clip='RN50x4.pt'),
}


def test_every_rn_config_is_listed():
    assert sorted(RN) == sorted(osp.basename(p) for p in glob.glob(osp.join(CFG_DIR, 'ovdquo_r50*.py')))


@pytest.mark.parametrize('name', sorted(RN))
def test_rn_original_settings(name):
    arch = RN[name]
    cfg = _cfg(name)
    m = cfg.model
    assert m.type == 'OVDQUO' and m.num_queries == 1000 and m.num_feature_levels == 3
    assert (m.encoder.num_layers, m.decoder.num_layers) == (6, 6)
    assert m.encoder.layer_cfg.ffn_cfg.feedforward_channels == 2048
    assert m.dn_cfg.group_cfg.num_dn_queries == 100 and m.positional_encoding.temperature == 20
    # backbone_out_indice [1, 2, 3], region prompt, in_channel of the two projected levels, one extra level
    b = m.backbone
    assert (b.type, b.model_name, tuple(b.out_indices)) == ('CLIPResNet', arch['model'], (1, 2, 3))
    assert osp.basename(b.region_prompt) == arch['prompt'] and osp.basename(b.checkpoint) == arch['clip']
    n = m.neck
    assert (n.type, n.in_channels, n.num_outs, n.kernel_size, n.bias) == \
        ('ChannelMapper', arch['in_channels'], 3, 1, True)
    assert m.region_embedder.type == 'ResNetRegionEmbedder'
    # text: RN text tower, 80 ImageNet templates, context 15, wildcard 'object'
    # gen_text_embeddings.py --no-this-is --context-length 15
    assert (m.text_this_is, m.text_context_length) == (False, 15)
    assert m.text_templates == 'imagenet' and 'ctx15' in m.text_embeddings and arch['model'].lower() in \
        m.text_embeddings and m.wildcard == 'object'
    # OV-COCO: 48 base + wildcard, novel factor 3 (target_class_factor), 100 detections, NMS 0.5
    assert m.class_names == 'ov_coco' and m.novel_classes == 'ov_coco' and m.novel_boost == 3.0
    assert (m.category_sampler.num_sampled, m.category_sampler.pool) == (None, 'base')
    assert m.test_cfg.max_per_img == 100 and m.test_cfg.nms.iou_threshold == 0.5
    # data: CLIP mean / std, batch padded to its largest image, short side 800 at test, OW_COCO_R2 pseudo boxes
    assert m.data_preprocessor.pad_size_divisor == 1 and m.data_preprocessor.mean[0] == pytest.approx(122.7709383)
    tr = cfg.train_dataloader
    assert tr.batch_size == arch['batch'] and tr.drop_last and tr.sampler.type == 'DefaultSampler'
    assert tr.dataset.pseudo_ann_file == 'annotations/OW_COCO_R2.json' and tr.dataset.type == 'OVCocoDataset'
    assert cfg.auto_scale_lr.base_batch_size == 8 * arch['batch'] and not cfg.auto_scale_lr.enable
    # schedule: 30 epochs, evaluation from 15, AdamW 1e-4 / wd 1e-4 / eps 1e-6, clip 0.1, constant LR, EMA 0.99996
    assert cfg.train_cfg.max_epochs == 30 and cfg.train_cfg.val_begin == 15
    ow = cfg.optim_wrapper
    assert (ow.optimizer.lr, ow.optimizer.weight_decay, ow.optimizer.eps, ow.clip_grad.max_norm) == \
        (1e-4, 1e-4, 1e-6, 0.1)
    assert not ow.get('paramwise_cfg') and cfg.param_scheduler == []
    ema = [h for h in cfg.custom_hooks if h.type == 'EMAHook'][0]
    assert ema.momentum == pytest.approx(4e-5) and ema.update_buffers
    assert cfg.default_hooks.checkpoint.save_best == 'coco/novel_ap50'


def test_rn_optimizer_trains_everything_but_the_clip_at_1e4():
    """The ResNet model has no trainable backbone part (the original's lr_backbone 0): every trainable parameter at
    1e-4, the frozen CLIP ResNet (all of it) out of the optimiser's way; the ViT pyramid's multiplier is gone (with
    it, the ChannelMapper would have been neck.necks.0 of a SequentialNeck and got 1e-5)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope
    from declip_mm.engine.amp import resolve_amp
    cfg = _cfg('ovdquo_r50-clip_8xb4-30e_ov-coco.py')
    init_default_scope('mmdet')
    mcfg = copy.deepcopy(cfg.model)
    mcfg.text_embeddings = None
    mcfg.backbone.checkpoint = mcfg.backbone.region_prompt = None
    with pytest.warns(UserWarning, match='random unit vectors'):
        model = MODELS.build(mcfg)
    assert resolve_amp(cfg, cuda=False) == 'float32'
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    for g in ow.optimizer.param_groups:
        if any(p.requires_grad for p in g['params']):
            assert g['lr'] == pytest.approx(1e-4) and g['weight_decay'] == pytest.approx(1e-4)
    named = dict(model.named_parameters())
    assert {n.split('.')[0] for n, p in named.items() if not p.requires_grad} == {'backbone'}
    assert all(not p.requires_grad for n, p in named.items() if n.startswith('backbone.'))
    assert sum(p.numel() for n, p in named.items() if n.startswith('neck.')) > 0
