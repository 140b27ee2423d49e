"""A converted original-format checkpoint evaluates through tools/test.py with our configs (tiny, CPU)."""
import json
import math
import os.path as osp
import sys

import torch

from .conftest import REPO, converter


def _tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'_tools_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _convert(mod, argv, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [mod.__file__] + argv)
    mod.main()


def test_clipself_checkpoint_through_test_tool(tmp_path, monkeypatch):
    from .test_fvit_converter import CLASSES, _clipself_tiny
    root = str(tmp_path / 'synth') + '/'
    _tool('make_synthetic_det').main(['--out', root, '--num-train', '2', '--num-val', '2', '--size', '128'])
    src, dst, emb, names = (str(tmp_path / n) for n in ('fvit.pth', 'fvit_declip-mm.pth', 'emb.pt', 'names.json'))
    torch.save({'meta': {'epoch': 3}, 'state_dict': _clipself_tiny()}, src)
    with open(names, 'w') as f:
        json.dump(list(CLASSES), f)
    _convert(converter('clipself_fvit_to_declip_mm'),
             [src, dst, '--class-names', names, '--embeddings-out', emb], monkeypatch)
    cfg = osp.join(REPO, 'configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
    metrics = _tool('test').main([cfg, dst, '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                                  f'test_dataloader.dataset.data_root={root}',
                                  f'test_evaluator.ann_file={root}annotations/val.json',
                                  'model.backbone.dense_mode=maskclip',
                                  f'model.roi_head.bbox_head.text_embeddings={emb}'])
    assert all(k in metrics and (math.isnan(metrics[k]) or 0 <= metrics[k] <= 100)
               for k in ('coco/novel_ap50', 'coco/base_ap50'))


def test_catseg_checkpoint_through_test_tool(tmp_path, monkeypatch):
    from .test_catseg_converter import CM
    from .reference import catseg_layout, eva_clip_visual_layout, eva_rope_tables, randomize, text_layout
    p = randomize(catseg_layout(32, 64, hidden=32, app_proj=32, text_proj=32, dec_dims=(32, 16), dec_guid=(32, 16),
                                dec_guid_proj=(8, 4), window=4, grid=8, pad_len=16), seed=4)
    p.update(randomize(eva_clip_visual_layout(64, 4, 32, 14, head_dim=16, prefix=CM + 'visual.'), seed=5))
    p.update(randomize(text_layout(32, 2, 32, prefix=CM + 'text.'), seed=6))
    p[CM + 'logit_scale'] = torch.tensor(4.6)
    cos, sin = eva_rope_tables(14, 16)
    p.update({k: (cos if k.endswith('cos') else sin) for k in p if 'rope.freqs' in k})
    src, dst = str(tmp_path / 'model_final.pth'), str(tmp_path / 'catseg_declip-mm.pth')
    torch.save({'model': p, 'iteration': 79999}, src)  # detectron2 layout
    cfg = osp.join(REPO, 'configs/catseg/catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py')
    _convert(converter('catseg_to_declip_mm'), [src, dst, '--config', cfg], monkeypatch)
    metrics = _tool('test').main([cfg, dst, '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                                  f'test_dataloader.dataset.data_root={tmp_path / "synth"}',
                                  'test_dataloader.dataset.num_images=2',
                                  f'train_dataloader.dataset.data_root={tmp_path / "synth"}'])
    assert 0.0 <= metrics['mIoU'] <= 100.0
