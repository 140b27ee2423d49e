"""tools/benchmark.py: FLOPs (FlopCounterMode) against hand counts, the device peak table, MFU arithmetic, and the
distill / pipeline sub-commands on the tiny config."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def test_count_flops_matches_hand_count():
    from declip_mm.benchmarks.flops import count_flops
    lin = torch.nn.Linear(32, 48, bias=False)
    x = torch.randn(5, 32)
    _, f = count_flops(lin, x)
    assert f == 2 * 5 * 32 * 48
    q, k, v = (torch.randn(2, 3, 40, 16) for _ in range(3))
    _, f = count_flops(F.scaled_dot_product_attention, q, k, v)
    assert f == 2 * (2 * 2 * 3 * 40 * 40 * 16)  # q k^T and A v, fused attention is counted (not dropped)
    q.requires_grad_()
    out = F.scaled_dot_product_attention(q, k, v)
    _, f = count_flops(out.sum().backward)
    assert f == 2.5 * 2 * (2 * 2 * 3 * 40 * 40 * 16)  # backward: 5 matmuls of the forward's size (FA2 count)
    conv = torch.nn.Conv2d(3, 8, 4, stride=4, bias=False)
    _, f = count_flops(conv, torch.randn(1, 3, 16, 16))
    assert f == 2 * (4 * 4) * 8 * (3 * 4 * 4)


@pytest.mark.parametrize('name,peak', [
    ('NVIDIA H100 80GB HBM3', 989.4), ('NVIDIA H100 PCIe', 756.0), ('NVIDIA H100 NVL', 835.0),
    ('NVIDIA H200', 989.4), ('NVIDIA A100-SXM4-80GB', 312.0), ('NVIDIA A100 80GB PCIe', 312.0),
    ('NVIDIA L40S', 362.05), ('NVIDIA GeForce RTX 4090', 165.2), ('cpu', None), ('Tesla T4', None)])
def test_peak_table(name, peak):
    from declip_mm.benchmarks.flops import peak_tflops
    assert peak_tflops(name) == peak
    assert peak_tflops(name, 100.0) == 100.0


def test_mfu_arithmetic():
    from declip_mm.benchmarks.flops import mfu
    # 1 TFLOP per image at 100 images/s on a 400 TFLOP/s device = 25 %
    assert mfu(1e12, 100.0, 400.0) == pytest.approx(0.25)
    assert mfu(1e12, 100.0, None) is None


def _benchmark(argv):
    from mmengine.registry import DefaultScope
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    with DefaultScope.overwrite_default_scope('declip_mm'):  # the default scope the benchmark sets is undone after
        return benchmark.main(argv)


def test_distill_benchmark_reports_stage_flops_and_mfu(capsys):
    cfg = osp.join(ROOT, 'configs', 'declip', 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py')
    res = _benchmark(['distill', cfg, '--device', 'cpu', '--batch-size', '2', '--iters', '1', '--warmup', '1',
                      '--peak-tflops', '1.0'])
    f = res['flops_per_image']
    assert set(f) == {'student_fwd', 'teacher_crops', 'vfm', 'losses', 'student_bwd'}
    assert all(v > 0 for v in f.values())
    assert res['total_flops_per_image'] == sum(f.values())
    # the student trains (backward of a forward pass costs about 1-2x the forward; at least not zero or >3x)
    assert 0.5 * f['student_fwd'] < f['student_bwd'] < 3 * f['student_fwd']
    assert res['mfu'] == pytest.approx(res['total_flops_per_image'] * res['images_per_s'] / 1e12)
    assert 'MFU' in capsys.readouterr().out


def test_pipeline_benchmark(tmp_path):
    cfg = osp.join(ROOT, 'configs', 'declip', 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py')
    res = _benchmark(['pipeline', cfg, '--num-images', '6', '--workers', '0', '--image-size', '96', '128',
                      '--gpu-images-per-s', '1000'])
    assert res['sample_shapes']['student'] == [3, 128, 128]
    assert res['sample_shapes']['vfm'] == [3, 112, 112]
    assert res['sample_shapes']['crops'] == [20, 3, 48, 48]  # max_crops slots of crop_size
    assert res['per_worker_images_per_s'] > 0
    assert res['workers_needed'] == -(-1000 // res['per_worker_images_per_s'])


def test_det_benchmark_random_weights_reports_flops():
    """--random-weights: no checkpoint and no text-embedding file needed (the tiny config's file does not exist)."""
    cfg = osp.join(ROOT, 'configs', 'fvit', 'fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
    res = _benchmark(['det', cfg, '--random-weights', '--num-images', '1', '--warmup', '1', '--device', 'cpu',
                      '--peak-tflops', '1.0'])
    assert res['flops_per_image'] > 0
    # images_per_s is reported rounded to 3 decimals
    assert res['mfu'] == pytest.approx(res['flops_per_image'] * res['images_per_s'] / 1e12, rel=1e-2)


def test_det_benchmark_ovdquo():
    """OV-DQUO configs: test size from DETRResize (R x R for the ViT configs), random text rows when the file is
    absent, FLOPs per image (divided by the batch: equal at batch 1 and 2 but for the once-per-batch text
    projection), MFU from them."""
    from mmengine.config import Config
    from declip_mm.benchmarks.det import _test_size
    for name, size in [('ovdquo_eva02-b16-declip_8xb4-35e_ov-lvis-1024.py', (1024, 1024)),
                       ('ovdquo_eva02-l14-336-clipself_8xb4-35e_ov-lvis-896.py', (896, 896)),
                       ('ovdquo_eva02-b16-declip_8xb4-30e_ov-coco-1024.py', (1024, 1024))]:
        assert _test_size(Config.fromfile(osp.join(ROOT, 'configs', 'ovdquo', name))) == size
    cfg = osp.join(ROOT, 'configs', 'ovdquo', 'ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
    res = [_benchmark(['det', cfg, '--random-weights', '--num-images', '2', '--warmup', '1', '--device', 'cpu',
                       '--batch', str(b), '--peak-tflops', '1.0']) for b in (1, 2)]
    assert res[0]['image_size'] == [128, 128] and res[0]['images'] == 2 and res[1]['images'] == 2
    assert res[0]['flops_per_image'] > 0
    # per image up to the text projection of the vocabulary, computed once per batch (2 x 6 x (32x128 + 128x256))
    assert res[0]['flops_per_image'] - res[1]['flops_per_image'] == pytest.approx(6 * (32 * 128 + 128 * 256))
    assert res[0]['mfu'] == pytest.approx(res[0]['flops_per_image'] * res[0]['images_per_s'] / 1e12, rel=1e-2)
    assert res[0]['peak_memory_mb'] > 0
