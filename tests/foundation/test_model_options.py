"""Config behaviour of our modules: unknown option keys are errors, checkpoint paths overridden with --cfg-options
reach every user of the file, and a trained full checkpoint replaces a missing initial CLIP file."""
import copy
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import declip_mm  # noqa: F401
from declip_mm.models.backbones import DeCLIPViT, tiny_clip_overrides
from declip_mm.models.backbones.clip_builder import build_clip_model
from declip_mm.registry import SEG_MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CATSEG = osp.join(REPO, 'configs/catseg/catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py')
TINY_ZS = osp.join(REPO, 'configs/zeroshot_seg/trainingfree_tiny-eva02_ov-scenes-synthetic.py')


def _model_cfg(path, inherit_text_checkpoint=False, **opts):
    cfg = Config.fromfile(path)
    if opts:
        cfg.merge_from_dict(opts)
    model = copy.deepcopy(cfg.model.to_dict())
    if inherit_text_checkpoint:  # as the shipped full-size configs: no text_encoder.checkpoint key at all
        model['text_encoder'].pop('checkpoint')
    return model


def _build_seg(mcfg):
    init_default_scope('mmseg')
    return SEG_MODELS.build(mcfg)


@pytest.fixture(scope='module')
def tiny_clip_file(tmp_path_factory):
    """A full tiny EVA CLIP (image + text towers) saved as an open_clip state dict."""
    torch.manual_seed(3)
    clip = build_clip_model('EVA02-B-16', tiny_clip_overrides('eva'))
    path = str(tmp_path_factory.mktemp('clip') / 'tiny_clip.pt')
    torch.save(clip.state_dict(), path)
    return path, clip.state_dict()


# ------------------------------------------------------------------------------------------- unknown option keys
@pytest.mark.parametrize('opts,match', [
    ({'model.slide_cfg.kernal': 96}, r"slide_cfg: unknown key\(s\) \['kernal'\]"),
    ({'model.background_collapse': dict(num_foreground=2, backgroud_first=True)}, r"\['backgroud_first'\]"),
    ({'model.slide_cfg': dict(_delete_=True, out_size=200, stride=80)}, r"missing key\(s\) \['kernel'\]"),
])
def test_catseg_dict_option_typos_are_errors(opts, match):
    with pytest.raises(ValueError, match=match):
        _build_seg(_model_cfg(TINY_CATSEG, **opts))


def test_catseg_dict_options_accepted():
    m = _build_seg(_model_cfg(TINY_CATSEG, **{'model.background_collapse': dict(num_foreground=2)}))
    assert m.slide_cfg == dict(out_size=200, kernel=120, stride=80, global_view=True)
    assert m.background_collapse == dict(num_foreground=2)


@pytest.mark.parametrize('bad,name', [(dict(embed_dims=32), 'embed_dims'),
                                      (dict(vision_cfg=dict(widht=64)), 'vision_cfg.widht'),
                                      (dict(text_cfg=dict(layer=2)), 'text_cfg.layer')])
def test_model_overrides_typos_are_errors(bad, name):
    overrides = copy.deepcopy(tiny_clip_overrides('eva'))
    for k, v in bad.items():
        overrides[k] = {**overrides.get(k, {}), **v} if isinstance(v, dict) else v
    with pytest.raises(ValueError, match=rf"unknown key\(s\) \['{name}'\]"):
        DeCLIPViT('EVA02-B-16', model_overrides=overrides)


# ------------------------------------------------------------------------------- checkpoint paths via --cfg-options
def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, osp.join(REPO, 'configs')) for p in CONFIGS])
def test_clip_checkpoint_override_reaches_every_user(path):
    """After ``--cfg-options model.backbone.checkpoint=NEW`` (distillation: ``model.student.checkpoint``) the old
    CLIP file is named nowhere in the model config (e.g. not in the text encoder's)."""
    cfg = Config.fromfile(path)
    key = 'student' if 'student' in cfg.model else 'backbone'
    old = cfg.model.get(key, {}).get('checkpoint')
    if not old:
        pytest.skip('no CLIP checkpoint file (tiny random model)')
    cfg.merge_from_dict({f'model.{key}.checkpoint': '/elsewhere/new.pt'})
    model = cfg.model.to_dict()
    assert old not in set(_strings(model)), f'{old} still used after overriding model.{key}.checkpoint'
    assert model[key]['checkpoint'] == '/elsewhere/new.pt'


@pytest.mark.parametrize('path', [TINY_CATSEG, TINY_ZS])
def test_text_encoder_reads_the_backbone_file(path, tiny_clip_file):
    file, sd = tiny_clip_file
    tiny = _build_seg(_model_cfg(path, **{'model.backbone.checkpoint': file}))
    assert tiny.text_encoder._pending_checkpoint is None  # the tiny configs keep their explicit random text tower
    assert not torch.equal(tiny.text_encoder.state_dict()['clip.text.token_embedding.weight'],
                           sd['text.token_embedding.weight'])
    m = _build_seg(_model_cfg(path, inherit_text_checkpoint=True, **{'model.backbone.checkpoint': file}))
    text = {k[len('clip.'):]: v for k, v in m.text_encoder.state_dict().items()}
    assert text and all(torch.equal(v, sd[k]) for k, v in text.items())
    assert torch.equal(m.backbone.visual.trunk.blocks[0].attn.q_proj.weight,
                       sd['visual.trunk.blocks.0.attn.q_proj.weight'])
    own = _model_cfg(path, **{'model.backbone.checkpoint': file, 'model.text_encoder.checkpoint': '/nope.pt'})
    assert own['text_encoder']['checkpoint'] == '/nope.pt'
    assert _build_seg(own).text_encoder._pending_checkpoint == '/nope.pt'  # an explicit text file is kept


# ----------------------------------------------------------- a trained checkpoint replaces the missing CLIP file
def test_trained_checkpoint_replaces_missing_clip_file(tmp_path, tiny_clip_file):
    file, _ = tiny_clip_file
    trained = _build_seg(_model_cfg(TINY_CATSEG, True, **{'model.backbone.checkpoint': file}))
    with torch.no_grad():  # "training" moved the weights away from the CLIP file
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = str(tmp_path / 'iter_4.pth')
    torch.save({'state_dict': trained.state_dict(), 'meta': {}}, ckpt)

    missing = _model_cfg(TINY_CATSEG, True, **{'model.backbone.checkpoint': str(tmp_path / 'deleted_clip.pt')})
    m = _build_seg(missing)  # builds (warning), as mmdet's init_cfg does at test time
    x = torch.rand(1, 3, 128, 128) * 255
    with pytest.raises(FileNotFoundError, match='deleted_clip.pt'):
        m.backbone(x)
    with pytest.raises(FileNotFoundError, match='deleted_clip.pt'):
        m.text_encoder.encode_sentences(['a cat'])
    with pytest.raises(FileNotFoundError, match='deleted_clip.pt'):
        m.init_weights()  # training cannot start without the CLIP file
    partial = {k: v for k, v in trained.state_dict().items() if not k.startswith('text_encoder.')}
    torch.save({'state_dict': partial}, str(tmp_path / 'partial.pth'))
    load_checkpoint(m, str(tmp_path / 'partial.pth'), map_location='cpu')
    assert m.backbone._pending_checkpoint is None and m.text_encoder._pending_checkpoint  # text still missing
    load_checkpoint(m, ckpt, map_location='cpu')  # what tools/test.py CKPT does
    assert m.text_encoder._pending_checkpoint is None
    m.eval()
    trained.eval()
    with torch.no_grad():
        assert torch.equal(m.backbone(x)[-1], trained.backbone(x)[-1])
        assert torch.equal(m.text_encoder.encode_sentences(['a cat']), trained.text_encoder.encode_sentences(['a cat']))


def test_test_tool_runs_a_trained_fvit_checkpoint_without_the_clip_file(tmp_path, tiny_clip_file):
    """tools/test.py CONFIG TRAINED.pth for F-ViT: the initial backbone file is gone, the numbers are those with it."""
    import importlib.util
    file, _ = tiny_clip_file

    def tool(name):
        spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', f'{name}.py'))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    data = str(tmp_path / 'det') + '/'
    paths = tool('make_synthetic_det').main(['--out', data, '--num-train', '2', '--num-val', '2', '--size', '128'])
    cfg_path = osp.join(REPO, 'configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
    clip_copy = str(tmp_path / 'clip_for_training.pt')
    with open(file, 'rb') as f, open(clip_copy, 'wb') as g:
        g.write(f.read())
    opts = ['--cfg-options', f'data_root={data}', f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}', f'val_evaluator.ann_file={data}annotations/val.json',
            f'test_evaluator.ann_file={data}annotations/val.json',
            f'model.roi_head.bbox_head.text_embeddings={paths["text_embeddings"]}',
            f'model.backbone.checkpoint={clip_copy}']
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict({'model.backbone.checkpoint': clip_copy,
                         'model.roi_head.bbox_head.text_embeddings': paths['text_embeddings']})
    init_default_scope('mmdet')
    from declip_mm.registry import DET_MODELS
    torch.manual_seed(0)
    model = DET_MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    test = tool('test')
    with_file = test.main([cfg_path, ckpt, '--work-dir', str(tmp_path / 't1')] + opts)
    os.remove(clip_copy)
    without = test.main([cfg_path, ckpt, '--work-dir', str(tmp_path / 't2')] + opts)
    assert with_file and without == with_file
