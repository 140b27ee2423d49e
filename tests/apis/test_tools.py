"""tools/infer.py (all three kinds) and tools/test.py's mmdet/mmseg flags (--show-dir, --out, --tta)."""
import glob
import json
import os.path as osp
import pickle

import numpy as np
import pytest

from .conftest import CATSEG_CFG, DET_CFG, REPO, ZS_CFG, load_tool


@pytest.fixture(scope='module')
def infer_tool():
    return load_tool('tools/infer.py')


def test_infer_cli_det_matches_api(infer_tool, det_ckpt, photo_dir, tmp_path):
    from declip_mm.apis import OVDetInferencer
    out = str(tmp_path / 'det')
    with pytest.warns(UserWarning, match='b_broken'):
        infer_tool.main(['det', DET_CFG, photo_dir, '--weights', det_ckpt, '--texts', 'cat, dog; puppy',
                         '--out-dir', out, '--score-thr', '0.1', '--device', 'cpu', '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json')) as f:
        js = json.load(f)
    api = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)
    with pytest.warns(UserWarning):
        ref = api(photo_dir, texts='cat, dog; puppy', pred_score_thr=0.1)
    assert js['classes'] == ['cat', 'dog'] and [s['input'] for s in js['skipped']] == \
        [osp.join(photo_dir, 'b_broken.jpg')]
    for a, b in zip(js['predictions'], ref['predictions']):
        assert a['labels'] == b['labels'] and a['label_names'] == b['label_names']
        assert np.allclose(a['bboxes'], b['bboxes'], atol=1e-4)
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(out, 'vis', '*'))) == ['a.jpg', 'c.png']


@pytest.mark.parametrize('kind', ['seg', 'zeroshot'])
def test_infer_cli_seg_label_maps(infer_tool, catseg_ckpt, photo_dir, tmp_path, kind):
    import mmcv
    from declip_mm.apis import OVSegInferencer
    cfg, ckpt = (CATSEG_CFG, ['--weights', catseg_ckpt]) if kind == 'seg' else (ZS_CFG, [])
    out = str(tmp_path / kind)
    with pytest.warns(UserWarning, match='b_broken'):
        infer_tool.main([kind, cfg, photo_dir] + ckpt + ['--texts', 'sky, person; man, wall', '--out-dir', out,
                                                     '--device', 'cpu', '--cache-dir', ''])
    with open(osp.join(out, 'predictions.json')) as f:
        js = json.load(f)
    api = OVSegInferencer(cfg, ckpt[1] if ckpt else None, device='cpu', cache_dir='', show_progress=False)
    with pytest.warns(UserWarning):
        ref = api(photo_dir, texts='sky, person; man, wall')
    assert js['classes'] == ['sky', 'person', 'wall'] and len(js['skipped']) == 1
    for a, b in zip(js['predictions'], ref['predictions']):
        lab = mmcv.imread(osp.join(out, a['label_map']), flag='unchanged')
        assert lab.shape == b['sem_seg'].shape and lab.max() <= 2
        if kind == 'seg':
            assert np.array_equal(lab, b['sem_seg'])
        assert a['present'].keys() == {js['classes'][i] for i in np.unique(lab)}
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(out, 'vis', '*'))) == ['a.jpg', 'c.png']


def test_infer_cli_errors(infer_tool, det_ckpt, catseg_ckpt, photo_dir, tmp_path):
    with pytest.raises(SystemExit, match='empty vocabulary'):
        infer_tool.main(['det', DET_CFG, photo_dir, '--weights', det_ckpt, '--texts', ' , ', '--out-dir',
                         str(tmp_path)])
    with pytest.raises(SystemExit, match='does not fit'):
        infer_tool.main(['det', DET_CFG, photo_dir, '--weights', catseg_ckpt, '--texts', 'cat', '--out-dir',
                         str(tmp_path), '--cache-dir', ''])
    with pytest.raises(SystemExit, match='tools/infer.py seg'):
        infer_tool.main(['det', CATSEG_CFG, photo_dir, '--weights', catseg_ckpt, '--texts', 'cat', '--out-dir',
                         str(tmp_path)])


# ------------------------------------------------------------------------------------------------ tools/test.py
@pytest.fixture(scope='module')
def det_data(tmp_path_factory):
    from declip_mm.datasets.synthetic_det import make_synthetic_ov_det
    root = str(tmp_path_factory.mktemp('det_data')) + '/'
    make_synthetic_ov_det(root, 2, 3, 128, 0)
    return root


def test_test_tool_det_show_dir_and_out(det_data, det_ckpt, det_text_file, tmp_path):
    tool = load_tool('tools/test.py')
    r = det_data
    show, pkl = str(tmp_path / 'show'), str(tmp_path / 'dets.pkl')
    tool.main([DET_CFG, det_ckpt, '--work-dir', str(tmp_path / 'w'), '--show-dir', show, '--out', pkl,
               '--cfg-options', f'test_dataloader.dataset.data_root={r}',
               f'test_evaluator.ann_file={r}annotations/val.json',
               f'model.roi_head.bbox_head.text_embeddings={det_text_file}'])
    with open(pkl, 'rb') as f:
        dets = pickle.load(f)
    assert len(dets) == 3 and all(len(d['pred_instances']['bboxes']) == len(d['pred_instances']['scores'])
                                  for d in dets)  # mmdet's DumpDetResults layout
    pics = glob.glob(osp.join(show, '*.png')) + glob.glob(osp.join(show, '*.jpg'))
    assert len(pics) == 3
    with pytest.raises(SystemExit, match='--tta'):
        tool.main([DET_CFG, det_ckpt, '--tta', '--work-dir', str(tmp_path / 'w2')])


def test_test_tool_draws_with_its_own_visualizer(det_data, det_ckpt, det_text_file, tmp_path):
    """A visualizer of another task already made in this process under mmdet's / mmseg's shared name
    'visualizer' (an earlier run, an inferencer) is not the one a detection test run draws with: each run of
    tools/test.py / train.py names its own (mmengine would hand back the existing one, and its hooks take the latest
    made)."""
    from mmengine.visualization import Visualizer
    from mmseg.visualization import SegLocalVisualizer
    if 'visualizer' not in Visualizer._instance_dict:
        SegLocalVisualizer.get_instance('visualizer')
    SegLocalVisualizer.get_instance(f'seg_{id(tmp_path)}')  # the most recent one made
    test_test_tool_det_show_dir_and_out(det_data, det_ckpt, det_text_file, tmp_path)


@pytest.mark.parametrize('kind', ['catseg', 'zeroshot'])
def test_test_tool_seg_show_dir_and_out(catseg_ckpt, tmp_path, kind):
    import mmcv
    tool = load_tool('tools/test.py')
    root, show, out = str(tmp_path / 'seg_data'), str(tmp_path / 'show'), str(tmp_path / 'preds')
    cfg_ckpt = [CATSEG_CFG, catseg_ckpt] if kind == 'catseg' else [ZS_CFG]
    m = tool.main(cfg_ckpt + ['--work-dir', str(tmp_path / 'w'), '--show-dir', show, '--out', out,
                              '--cfg-options', f'test_dataloader.dataset.data_root={root}'])
    assert 'mIoU' in m
    maps = sorted(glob.glob(osp.join(out, '*.png')))
    assert len(maps) == 4 and all(mmcv.imread(p, flag='unchanged').max() < 8 for p in maps)
    pics = glob.glob(osp.join(show, '**', '*.png'), recursive=True)
    assert len(pics) == 4
    img = mmcv.imread(pics[0])
    lab = mmcv.imread(maps[0], flag='unchanged')
    assert img.shape[1] > 2 * lab.shape[1]  # ground truth | prediction, plus the legend panels


def test_test_tool_show_flags_configure_the_hooks():
    """--show / --wait-time / --show-dir end up where mmdet's and mmseg's test.py put them."""
    import argparse
    tool = load_tool('tools/test.py')
    from mmengine.config import Config
    det = Config.fromfile(DET_CFG)
    tool.trigger_visualization_hook(det, argparse.Namespace(show=True, wait_time=0.5, show_dir='pics', config='c'),
                                    'det')
    v = det.default_hooks.visualization
    assert (v.draw, v.show, v.wait_time, v.test_out_dir) == (True, True, 0.5, 'pics')
    seg = Config.fromfile(CATSEG_CFG)
    tool.trigger_visualization_hook(seg, argparse.Namespace(show=False, wait_time=2, show_dir='pics', config='c'),
                                    'seg')
    assert seg.default_hooks.visualization.draw and seg.visualizer.save_dir == 'pics'
    assert seg.visualizer.type == 'OVSegLocalVisualizer'
    # a benchmark config (mmseg's hook defaults to every 50th image): --show-dir draws every test image
    bench = Config.fromfile(osp.join(REPO, 'configs/catseg/catseg_eva02-b16-declip_4xb1-80k_ade150.py'))
    assert bench.default_hooks.visualization.get('interval', 50) == 50
    tool.trigger_visualization_hook(bench, argparse.Namespace(show=False, wait_time=2, show_dir='pics', config='c'),
                                    'seg')
    assert bench.default_hooks.visualization.interval == 1 and bench.visualizer.save_dir == 'pics'


def test_dist_and_slurm_test_scripts_forward_arguments(tmp_path):
    import os
    import subprocess
    from .conftest import REPO as repo
    env = dict(os.environ, PYTHON='echo')
    out = subprocess.run(['bash', osp.join(repo, 'tools', 'dist_test.sh'), 'cfg.py', 'ckpt.pth', '2', '--out', 'x.pkl'],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ['-m', 'torch.distributed.run', '--nnodes=1'] and '--nproc_per_node=2' in out
    assert out[-7:] == [osp.join(repo, 'tools', 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher', 'pytorch',
                        '--out', 'x.pkl']
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='4')
    out = subprocess.run(['bash', osp.join(repo, 'tools', 'slurm_test.sh'), 'part', 'job', 'cfg.py', 'ckpt.pth',
                          '--show-dir', 'v'], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[:4] == ['-p', 'part', '--job-name=job', '--gres=gpu:8'] and '--ntasks=4' in out
    assert out[-6:] == [osp.join(repo, 'tools', 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher=slurm', '--show-dir',
                        'v']


def test_benchmark_infer_runs(tmp_path):
    """tools/benchmark.py infer on 2 generated photo crops (plumbing only: no timing assertions)."""
    bench = load_tool('tools/benchmark.py')
    out = str(tmp_path / 'b.json')
    res = bench.main(['infer', 'zeroshot', ZS_CFG, '--num-images', '2', '--texts', 'person, flag', '--device', 'cpu',
                      '--json', out])
    assert res['images'] == 2 and res['classes'] == 2
    with open(out) as f:
        assert json.load(f)['images'] == 2
    assert {'text_first_s', 'text_cached_memory_s', 'text_cached_disk_s', 'forward_s', 'images_per_s'} <= set(res)
