"""OpenAI CLIP TorchScript archives (``ViT-B-16.pt`` as OpenAI ships it) load directly, without unpickling code."""
import io
import pickle
import zipfile

import pytest
import torch
import torch.nn as nn

from declip_mm.models.backbones import DeCLIPViT, tiny_clip_overrides
from declip_mm.models.backbones.checkpoint import CheckpointError, is_torchscript_archive, read_checkpoint
from declip_mm.models.text import CLIPTextEncoder

from .reference import clip_text, openai_visual, openai_visual_layout, randomize, text_layout


class _Node(nn.Module):
    """A scriptable module holding parameters under OpenAI CLIP's names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _scripted_clip(sd):
    """A TorchScript module whose parameters are ``sd`` (fp16 where OpenAI stores fp16), plus what OpenAI's
    archives also carry: plain tensor attributes (``attn_mask``) and scalar buffers (``input_resolution``)."""
    root = _Node()
    for key, value in sd.items():
        *path, leaf = key.split('.')
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, _Node())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    root.transformer.resblocks._modules['0'].attn_mask = torch.full((77, 77), float('-inf')).triu(1)
    root.register_buffer('input_resolution', torch.tensor(224))
    return torch.jit.script(root)


@pytest.fixture(scope='module')
def openai_archive(tmp_path_factory):
    sd = randomize(openai_visual_layout(64, 4, 32, 14), seed=11)
    sd.update(randomize(text_layout(32, 2, 32), seed=12))
    sd['logit_scale'] = torch.tensor(4.6052)
    sd = {k: (v.half() if k.startswith('visual.transformer.') else v) for k, v in sd.items()}  # OpenAI: fp16
    path = str(tmp_path_factory.mktemp('openai') / 'ViT-B-16.pt')
    _scripted_clip(sd).save(path)
    return path, sd


def test_archive_read_without_jit_or_pickle_code(openai_archive, monkeypatch):
    """Parameters come back exactly (dtype included); plain attributes are not weights.  ``torch.jit.load`` and
    ``torch.load`` are never called."""
    path, sd = openai_archive
    assert is_torchscript_archive(path)

    def boom(*a, **k):
        raise AssertionError('the TorchScript archive must not be executed or unpickled by torch')
    monkeypatch.setattr(torch.jit, 'load', boom)
    monkeypatch.setattr(torch, 'load', boom)
    got, meta = read_checkpoint(path)
    assert meta == {}
    assert set(got) == set(sd) | {'input_resolution'}
    for k, v in sd.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_backbone_and_text_encoder_load_archive(openai_archive):
    """No conversion step: DeCLIPViT and the text encoder read the archive and compute OpenAI CLIP's outputs."""
    path, sd = openai_archive
    ref_sd = {k: v.float() for k, v in sd.items()}
    bb = DeCLIPViT('ViT-B-16', tiny_clip_overrides('openai'), checkpoint=path).eval()
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bb.encode_image(img), openai_visual(ref_sd, img, 4)['cls'], rtol=1e-4, atol=1e-5)
    enc = CLIPTextEncoder('ViT-B-16', tiny_clip_overrides('openai'), checkpoint=path)
    tokens = enc.tokenizer(['a photo of a cat', 'a dog'])
    with torch.no_grad():
        ours = enc.clip.encode_text(tokens)
    torch.testing.assert_close(ours, clip_text(ref_sd, tokens, 2), rtol=1e-4, atol=1e-5)


def _archive_with_pickle(tmp_path, payload: bytes):
    path = str(tmp_path / 'evil.pt')
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('evil/data.pkl', payload)
        zf.writestr('evil/constants.pkl', pickle.dumps(()))
        zf.writestr('evil/code/__torch__.py', 'class M(Module):\n  __parameters__ = ["w", ]\n')
    return path


def test_archive_with_foreign_globals_is_refused(tmp_path):
    """A data.pkl that names any global outside the TorchScript set (here ``os.system``) is an error, never run."""
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ('echo pwned > /dev/null', ))
    path = _archive_with_pickle(tmp_path, pickle.dumps(Evil(), protocol=2))
    with pytest.raises(CheckpointError, match='not allowed'):
        read_checkpoint(path)
    buf = io.BytesIO()
    pickle.dump({'w': 1}, buf, protocol=2)  # no module object at all
    with pytest.raises(CheckpointError):
        read_checkpoint(_archive_with_pickle(tmp_path, buf.getvalue()))
