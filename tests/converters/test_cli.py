"""The converters as command-line tools: SRC DST in, a one-screen summary out, a weights_only-loadable file."""
import sys

import torch

from .conftest import converter
from .test_declip_export import eva_release_clip
from .test_fvit_converter import _clipself_tiny


def _run(mod, argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [mod.__file__] + argv)
    mod.main()
    return capsys.readouterr().out


def test_fvit_cli_round_trip(tmp_path, monkeypatch, capsys):
    mod = converter('clipself_fvit_to_declip_mm')
    src, dst, back = (str(tmp_path / n) for n in ('fvit.pth', 'fvit_declip-mm.pth', 'fvit_back.pth'))
    p = _clipself_tiny()
    torch.save({'meta': {'epoch': 3, 'CLASSES': ('a', 'b')}, 'state_dict': p}, src)  # mmdet 2.x layout
    out = _run(mod, [src, dst], monkeypatch, capsys)
    lines = out.strip().splitlines()
    assert lines[0].startswith('== CLIPSelf F-ViT -> declip_mm FViT:') and len(lines) <= 25
    assert any('dropped' in ln and 'fc_cls' in ln for ln in lines)
    conv = torch.load(dst, weights_only=True)
    assert 'roi_head.bbox_head.fc_cls.logit_scale' in conv['state_dict']
    _run(mod, [dst, back, '--reverse'], monkeypatch, capsys)
    again = torch.load(back, weights_only=True)['state_dict']
    assert all(torch.equal(again[k], p[k]) for k in again)


def test_declip_export_cli(tmp_path, monkeypatch, capsys):
    from declip_mm.models.backbones import DeCLIPViT, tiny_clip_overrides
    from declip_mm.models.backbones.checkpoint import export_backbone
    clip = eva_release_clip()
    clip_path, ours, dst = (str(tmp_path / n) for n in ('EVA02_CLIP.pt', 'backbone_epoch_1.pth', 'epoch_1.pt'))
    torch.save(clip, clip_path)
    export_backbone(DeCLIPViT('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=clip_path), ours)
    out = _run(converter('declip_mm_to_declip'), [ours, clip_path, dst], monkeypatch, capsys)
    assert 'visual (declip_mm -> DeCLIP)' in out and 'added' in out
    sd = torch.load(dst, weights_only=True)['state_dict']
    assert set(sd) == set(clip)


def test_source_metadata_with_numpy_scalars_loads_and_code_does_not(tmp_path):
    """detectron2 / mmdet 2.x metadata may hold numpy scalars (allowed); a pickled callable never loads, and the
    error names the refused global."""
    import numpy as np
    import pickle
    import pytest
    from _common import load_source
    from declip_mm.utils.run_checkpoints import CheckpointLoadError
    path = str(tmp_path / 'model_final.pth')
    torch.save({'model': {'w': torch.ones(2)}, 'iteration': np.int64(79999), 'best': np.float64(0.5)}, path)
    assert load_source(path)['iteration'] == 79999

    class Evil:
        def __reduce__(self):
            import os
            return (os.getcwd, ())
    bad = str(tmp_path / 'evil.pth')
    torch.save({'model': {'w': torch.ones(2)}, 'x': Evil()}, bad, pickle_module=pickle)
    with pytest.raises(CheckpointLoadError, match=r'evil\.pth: refusing .*GLOBAL posix\.getcwd'):
        load_source(bad)


def test_numpy1_pickles_load(tmp_path):
    """Files written under numpy 1.x name numpy.core.multiarray (numpy 2: numpy._core); both are allowed."""
    import numpy as np
    from _common import load_source
    path = tmp_path / 'np1.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'best': np.float64(0.5), 'arr': np.arange(3)}, path,
               _use_new_zipfile_serialization=False)  # the legacy format is one plain pickle stream
    data = path.read_bytes()
    assert b'numpy._core.multiarray' in data
    path.write_bytes(data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    obj = load_source(str(path))
    assert obj['best'] == 0.5 and obj['arr'].tolist() == [0, 1, 2]
