"""Checkpoint formats: open_clip, EVA-CLIP release, DeCLIP epoch files, our exports; clear failures."""
import logging

import pytest
import torch

from declip_mm.models.backbones import (CheckpointError, DeCLIPViT, build_clip_model, export_backbone,
                                        tiny_clip_overrides)
from declip_mm.models.text import CLIPTextEncoder

EVA_RENAMES = [('attn.norm.', 'attn.inner_attn_ln.'), ('mlp.norm.', 'mlp.ffn_ln.'), ('mlp.fc1_g.', 'mlp.w1.'),
               ('mlp.fc1_x.', 'mlp.w2.'), ('mlp.fc2.', 'mlp.w3.'), ('attn.q_proj.bias', 'attn.q_bias'),
               ('attn.v_proj.bias', 'attn.v_bias')]


def to_eva_release(sd):
    """open_clip EVA02 naming -> the original EVA-CLIP release naming (as in EVA02_CLIP_B_psz16_s8B.pt)."""
    out = {}
    for k, v in sd.items():
        if k.startswith('visual.trunk.'):
            k = 'visual.' + k[len('visual.trunk.'):]
            for a, b in EVA_RENAMES:
                k = k.replace(a, b)
        out[k] = v
    out['visual.rope.freqs_cos'] = torch.zeros(4, 4)  # RoPE buffers in release files are dropped on load
    return out


@pytest.fixture(scope='module')
def tiny_eva(tmp_path_factory):
    torch.manual_seed(3)
    clip = build_clip_model('EVA02-B-16', tiny_clip_overrides('eva'))
    with torch.no_grad():
        for p in clip.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return clip, tmp_path_factory.mktemp('ck')


def _visual_params(bb):
    return {k: v for k, v in bb.state_dict().items() if k.startswith('visual.')}


def test_eva_release_and_open_clip_naming_load_the_same_weights(tiny_eva):
    clip, tmp = tiny_eva
    sd = clip.state_dict()
    torch.save(sd, tmp / 'openclip.pt')
    release = to_eva_release(sd)
    assert 'visual.blocks.0.attn.q_bias' in release and 'visual.blocks.0.mlp.w1.weight' in release
    torch.save(release, tmp / 'release.pt')
    # DeCLIP epoch_k.pt: EVA naming, wrapped in state_dict, DDP 'module.' prefixes, text tower included
    torch.save({'epoch': 6, 'name': 'x', 'state_dict': {'module.' + k: v for k, v in release.items()},
                'optimizer': {}}, tmp / 'epoch_6.pt')
    kw = dict(model_name='EVA02-B-16', model_overrides=tiny_clip_overrides('eva'))
    a = DeCLIPViT(checkpoint=str(tmp / 'openclip.pt'), **kw)
    b = DeCLIPViT(checkpoint=str(tmp / 'release.pt'), **kw)
    c = DeCLIPViT(checkpoint=str(tmp / 'epoch_6.pt'), **kw)
    want = {'visual.' + k: v for k, v in clip.visual.state_dict().items()}
    for bb in (a, b, c):
        got = _visual_params(bb)
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), k
    # the text tower of the same files loads into the text encoder
    te_a = CLIPTextEncoder(checkpoint=str(tmp / 'openclip.pt'), **kw)
    te_c = CLIPTextEncoder(checkpoint=str(tmp / 'epoch_6.pt'), **kw)
    e1 = te_a.embed_classes(['cat', 'dog'], ['a photo of a {}.'])
    e2 = te_c.embed_classes(['cat', 'dog'], ['a photo of a {}.'])
    tokens = te_a.tokenizer(['a photo of a cat.', 'a photo of a dog.'])
    ref = torch.nn.functional.normalize(clip.encode_text(tokens), dim=-1)
    assert torch.allclose(e1, ref, atol=1e-5) and torch.allclose(e2, ref, atol=1e-5)


def test_openai_packed_in_proj_loads_into_split_qkv(tmp_path):
    torch.manual_seed(4)
    clip = build_clip_model('ViT-B-16', tiny_clip_overrides('openai'))
    torch.save(clip.state_dict(), tmp_path / 'vit.pt')
    kw = dict(model_name='ViT-B-16', model_overrides=tiny_clip_overrides('openai'), dense_mode='csa',
              out_types=('dense', 'cls'))
    packed = DeCLIPViT(checkpoint=str(tmp_path / 'vit.pt'), **kw).eval()
    split = DeCLIPViT(checkpoint=str(tmp_path / 'vit.pt'), split_qkv=True, **kw).eval()
    W = clip.visual.transformer.resblocks[1].attn.in_proj_weight
    assert torch.equal(split.visual.transformer.resblocks[1].attn.k_proj_weight, W[64:128])
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        for u, v in zip(packed(x), split(x)):
            assert torch.allclose(u, v, atol=1e-5)
        x224 = torch.randn(1, 3, 224, 224)  # open_clip's own ViT only runs at its configured size
        assert torch.allclose(packed.encode_image(x224), clip.encode_image(x224), atol=1e-5)
        assert torch.allclose(split.encode_image(x224), clip.encode_image(x224), atol=1e-5)


def test_export_roundtrip_and_mode_mismatch_warning(tiny_eva, tmp_path):
    from mmengine.logging import MMLogger
    clip, tmp = tiny_eva
    torch.save(clip.state_dict(), tmp / 'base.pt')
    kw = dict(model_name='EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), out_types=('dense', 'context'))
    bb = DeCLIPViT(checkpoint=str(tmp / 'base.pt'), dense_mode='csa', **kw).eval()
    path = export_backbone(bb, str(tmp_path / 'export.pth'), meta=dict(note='test'))
    re = DeCLIPViT(checkpoint=path, dense_mode='csa', **kw).eval()
    assert re.checkpoint_meta['dense_mode'] == 'csa' and re.checkpoint_meta['note'] == 'test'
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(bb(x)[0], re(x)[0])
    logger = MMLogger.get_current_instance()
    records = []
    h = logging.Handler()
    h.emit = lambda r: records.append(r.getMessage())
    logger.addHandler(h)
    try:
        DeCLIPViT(checkpoint=path, dense_mode='qq', **kw)
    finally:
        logger.removeHandler(h)
    assert any("dense_mode='csa'" in m and "dense_mode='qq'" in m for m in records)


def test_wrong_width_and_truncated_files_fail_clearly(tiny_eva, tmp_path):
    clip, _ = tiny_eva
    sd = clip.state_dict()
    torch.save(sd, tmp_path / 'ok.pt')
    wider = tiny_clip_overrides('eva')
    wider['vision_cfg']['timm_kwargs']['embed_dim'] = 96
    with pytest.raises(CheckpointError, match='wrong architecture or width'):
        DeCLIPViT('EVA02-B-16', model_overrides=wider, checkpoint=str(tmp_path / 'ok.pt'))
    data = (tmp_path / 'ok.pt').read_bytes()
    (tmp_path / 'cut.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r'cut\.pt: unreadable checkpoint, truncated'):
        DeCLIPViT('EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), checkpoint=str(tmp_path / 'cut.pt'))
    with pytest.raises(CheckpointError, match='OpenAI-style ViT'):
        DeCLIPViT('ViT-B-16', model_overrides=tiny_clip_overrides('openai'), checkpoint=str(tmp_path / 'ok.pt'))
    partial = {k: v for k, v in sd.items() if 'blocks.2.' not in k}
    torch.save(partial, tmp_path / 'partial.pt')
    with pytest.raises(CheckpointError, match=r'missing .*blocks\.2\.'):
        DeCLIPViT('EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), checkpoint=str(tmp_path / 'partial.pt'))
    missing = DeCLIPViT('EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), checkpoint=str(tmp_path / 'nope.pt'))
    with pytest.raises(CheckpointError, match='not found'):  # unless a full model checkpoint fills the weights
        missing(torch.zeros(1, 3, 32, 32))
    with pytest.raises(CheckpointError, match='not found'):
        missing.init_weights()


class _PicklesAFunction:
    def __reduce__(self):
        import os
        return os.getcwd, ()


def test_refused_global_is_named_and_not_called_truncated(tiny_eva, tmp_path):
    """A complete file that pickles a global outside the allow-list: the error names the global and does not blame
    truncation; a truncated file and a foreign file say what they are."""
    import pickle
    from declip_mm.models.backbones.checkpoint import read_checkpoint
    clip, _ = tiny_eva
    path = tmp_path / 'with_code.pt'
    torch.save({'state_dict': clip.state_dict(), 'hook': _PicklesAFunction()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(str(path))
    path_part, msg = str(e.value).split('with_code.pt', 1)
    assert 'GLOBAL posix.getcwd' in msg and 'refusing' in msg
    assert 'truncated' not in msg and 'corrupt' not in msg
    data = path.read_bytes()
    (tmp_path / 'cut.pt').write_bytes(data[:len(data) // 3])
    with pytest.raises(CheckpointError, match=r'cut\.pt: unreadable checkpoint, truncated') as e:
        read_checkpoint(str(tmp_path / 'cut.pt'))
    assert 'refus' not in str(e.value).split('cut.pt', 1)[1]
    (tmp_path / 'notes.pt').write_text('these are not weights')
    with pytest.raises(CheckpointError, match=r'notes\.pt: unreadable checkpoint, not a torch checkpoint'):
        read_checkpoint(str(tmp_path / 'notes.pt'))


def test_text_encoder_cache_follows_weights_and_class_list():
    te = CLIPTextEncoder('EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), frozen=False)
    with torch.no_grad():
        e1 = te.embed_classes(['cat', 'dog'], ['a {}.', 'the {}.'])
        assert e1 is te.embed_classes(['cat', 'dog'], ['a {}.', 'the {}.'])  # cached
        assert torch.allclose(e1.norm(dim=-1), torch.ones(2))
        # per class: mean of normalised sentence embeddings, renormalised
        s = te.encode_sentences(['a cat.', 'the cat.'])
        assert torch.allclose(e1[0], torch.nn.functional.normalize(s.mean(0), dim=0), atol=1e-6)
        e3 = te.embed_classes(['cat', 'bird'], ['a {}.', 'the {}.'])
        assert torch.allclose(e3[0], e1[0]) and not torch.allclose(e3[1], e1[1])
        for p in te.parameters():  # an optimizer-style in-place update
            p.add_(0.05 * torch.randn_like(p))
        e4 = te.embed_classes(['cat', 'dog'], ['a {}.', 'the {}.'])
    assert not torch.allclose(e4, e1)
    e5 = te.embed_classes(['cat'], ['a {}.'])  # grad enabled + trainable: not cached, differentiable
    assert e5.requires_grad
