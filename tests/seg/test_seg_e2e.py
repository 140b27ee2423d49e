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


def test_catseg_tiny_train_then_test(tmp_path):
    import test as test_tool
    import train as train_tool
    data_root = str(tmp_path / 'synth')
    work = str(tmp_path / 'work')
    train_tool.main([TINY_CATSEG_CFG, '--work-dir', work] + _opts(data_root))
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    # (mmseg's SegVisualizationHook asks runner.iter, which builds the train loop: keep its data in tmp too)
    metrics = test_tool.main([TINY_CATSEG_CFG, ckpt, '--work-dir', str(tmp_path / 'test')] + _opts(data_root))
    assert 0.0 <= metrics['mIoU'] <= 100.0 and 'mIoU_mmseg' in metrics
    overlays = glob.glob(str(tmp_path / 'test' / '*' / 'vis_data' / 'vis_image' / '*.png'))
    assert len(overlays) == 2  # one overlay picture per test image


def test_zeroshot_tiny_through_test_tool(tmp_path):
    import test as test_tool
    data_root = str(tmp_path / 'synth')
    metrics = test_tool.main([TINY_ZS_CFG, '--work-dir', str(tmp_path / 'zs'), '--cfg-options',
                              f'test_dataloader.dataset.data_root={data_root}', 'test_dataloader.dataset.num_images=2'])
    assert 0.0 <= metrics['mIoU'] <= 100.0
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
        assert cfg.model.class_names.startswith('cls_')
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
