"""End to end through tools/train.py and tools/test.py on the embedded synthetic set (CPU, tiny random CLIPs)."""
import glob
import os.path as osp
import sys

import pytest

from .conftest import REPO, TINY_CATSEG_CFG, TINY_ZS_CFG

sys.path.insert(0, osp.join(REPO, 'tools'))


def _opts(data_root):
    # 2 training iterations and 2 test images keep the CI budget; the code path is the full one
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}', 'test_dataloader.dataset.num_images=2',
            'train_cfg.max_iters=2']


def _dumping_config(tmp_path, base_cfg):
    """``base_cfg`` whose test evaluator also dumps every prediction (mmengine ``DumpResults``)."""
    dump = str(tmp_path / 'preds.pkl')
    cfg = tmp_path / 'dump_cfg.py'
    cfg.write_text(f"_base_ = [{base_cfg!r}]\n"
                   f"test_evaluator = [dict(type='OVSegMetric', ignore_index=255), "
                   f"dict(type='DumpResults', out_file_path={dump!r})]\n")
    return str(cfg), dump


def independent_miou(dump_file, num_classes, ignore=255):
    """detectron2 / mmseg mIoU (percent) recomputed with numpy from the dumped predictions and ground truth."""
    import pickle

    import numpy as np
    with open(dump_file, 'rb') as f:
        samples = pickle.load(f)
    conf = np.zeros((num_classes, num_classes), np.int64)
    for s in samples:
        p = np.asarray(s['pred_sem_seg']['data']).reshape(-1).astype(np.int64)
        g = np.asarray(s['gt_sem_seg']['data']).reshape(-1).astype(np.int64)
        k = g != ignore
        conf += np.bincount(g[k] * num_classes + p[k], minlength=num_classes ** 2).reshape(num_classes, -1)
    tp = np.diag(conf).astype(float)
    gt, pred = conf.sum(1), conf.sum(0)
    union = gt + pred - tp
    iou = tp / np.maximum(union, 1)
    return len(samples), 100 * iou[gt > 0].mean(), 100 * iou[union > 0].mean()


def test_catseg_tiny_train_then_test(tmp_path):
    import test as test_tool
    import train as train_tool
    data_root = str(tmp_path / 'synth')
    work = str(tmp_path / 'work')
    train_tool.main([TINY_CATSEG_CFG, '--work-dir', work] + _opts(data_root))
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    # (mmseg's SegVisualizationHook asks runner.iter, which builds the train loop: keep its data in tmp too)
    cfg, dump = _dumping_config(tmp_path, TINY_CATSEG_CFG)
    metrics = test_tool.main([cfg, ckpt, '--work-dir', str(tmp_path / 'test')] + _opts(data_root))
    n, d2, mm = independent_miou(dump, 8)
    assert n == 2
    assert metrics['mIoU'] == pytest.approx(d2, abs=0.006) and metrics['mIoU_mmseg'] == pytest.approx(mm, abs=0.006)
    overlays = glob.glob(str(tmp_path / 'test' / '*' / 'vis_data' / 'vis_image' / '*.png'))
    assert len(overlays) == 2  # one overlay picture per test image


def test_zeroshot_tiny_through_test_tool(tmp_path):
    import test as test_tool
    data_root = str(tmp_path / 'synth')
    cfg, dump = _dumping_config(tmp_path, TINY_ZS_CFG)
    metrics = test_tool.main([cfg, '--work-dir', str(tmp_path / 'zs'), '--cfg-options',
                              f'test_dataloader.dataset.data_root={data_root}', 'test_dataloader.dataset.num_images=2'])
    n, d2, mm = independent_miou(dump, 8)
    assert n == 2
    assert metrics['mIoU'] == pytest.approx(d2, abs=0.006) and metrics['mIoU_mmseg'] == pytest.approx(mm, abs=0.006)
    assert len(glob.glob(str(tmp_path / 'zs' / '*' / 'vis_data' / 'vis_image' / '*.png'))) == 2


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'configs', 'catseg', '*.py'))
                                        + glob.glob(osp.join(REPO, 'configs', 'zeroshot_seg', '*.py'))))
def test_configs_parse(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    assert cfg.model.type in ('CATSeg', 'DeCLIPZeroShotSegmentor')
    assert cfg.test_dataloader.dataset.type
    name = osp.basename(path)
    if cfg.model.type == 'CATSeg' and 'tiny' not in name and '_coco171_3' not in name:  # evaluation configs
        assert cfg.model.decode_head.test_pooling_size == (1, 1) and cfg.model.slide_cfg.out_size == 640
        if name.endswith('ade847.py'):
            assert cfg.test_evaluator.ignore_index == 65535
            assert cfg.test_dataloader.dataset.pipeline[2].type == 'LoadSegAnnotations16'
        if name.endswith('voc21.py'):
            assert cfg.model.background_collapse.num_foreground == 20
    if cfg.model.type == 'CATSeg' and '_coco171_3' in name:  # training configs
        assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.01
        assert cfg.model.decode_head.feature_resolution == (24, 24)
        assert cfg.param_scheduler[0].type == 'CosineAnnealingLR' and cfg.train_cfg.max_iters == 80000
    if cfg.model.type == 'DeCLIPZeroShotSegmentor' and 'tiny' not in path:
        assert cfg.model.class_names.startswith(('cls_', 'corrclip_cls_'))  # CorrCLIP ships its own name files
        if path.endswith('voc21.py'):
            assert (cfg.model.prob_thd, cfg.model.logit_scale) == (0.4, 80.0)
        if path.endswith('context60.py'):
            assert cfg.model.prob_thd == 0.15
        if path.endswith('coco_object.py'):
            assert cfg.model.prob_thd == 0.2


def test_benchmark_seg_command(tmp_path):
    import benchmark
    out = str(tmp_path / 'bench.json')
    res = benchmark.main(['seg', TINY_CATSEG_CFG, '--size', '96', '120', '--batch', '2', '--iters', '1',
                          '--warmup', '0', '--device', 'cpu', '--json', out])
    assert res['images_per_s'] > 0 and res['batch'] == 2 and res['num_test_classes'] == 8
    assert osp.isfile(out)
