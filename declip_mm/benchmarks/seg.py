"""Segmentation test speed: images/s and peak memory of a CAT-Seg / training-free config's ``predict``.

    python tools/benchmark.py seg configs/catseg/catseg_vitb16_4xb1-80k_ade150.py [--checkpoint CKPT]
        [--random-weights] [--batch 1] [--size 512 683] [--iters 20] [--warmup 3] [--device cuda]

Images are random (H, W) tensors run through the config's data preprocessor and ``model.predict`` (the
same sliding-window + global inference as ``tools/test.py``, without data loading or the metric).  With
``--random-weights`` the CLIP checkpoints in the config are dropped (no files needed; speed is unchanged).
The official CAT-Seg B/16 takes about 0.6 s/image on a GPU at batch 1.

CorrCLIP configs (``proxy=CorrCLIPAttention``) read per-image region masks: the benchmark replaces the config's mask
source with ``--regions`` random rectangles per image (painted like SAM 2's masks, 0 = unsegmented), so no mask
files are needed and the timing covers the region merging, restricted attention, mask class tokens and the vote.
"""
import copy
import time

import torch

from .common import add_config_arguments, load_config, peak_mb
from .flops import add_peak_argument, count_flops, device_name, format_flops, mfu, peak_tflops


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--random-weights', action='store_true', help='ignore the CLIP checkpoints in the config')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--size', type=int, nargs=2, default=(512, 683), metavar=('H', 'W'),
                        help='test image size after the pipeline resize (default 512x683)')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--regions', type=int, default=32,
                        help='CorrCLIP configs: random regions per image replacing the mask files (default 32)')
    parser.add_argument('--amp', action='store_true', help='autocast (CUDA) in --amp-dtype')
    parser.add_argument('--amp-dtype', default='bfloat16', choices=['bfloat16', 'float16'])
    add_peak_argument(parser)


def _drop_ckpts(d):
    if isinstance(d, dict):
        for k in list(d):
            if k == 'checkpoint' and isinstance(d[k], str):
                d[k] = None
            else:
                _drop_ckpts(d[k])
    elif isinstance(d, (list, tuple)):
        for x in d:
            _drop_ckpts(x)


class RandomRegions:
    """Mask source for benchmarking: ``n`` random rectangles per image (seeded by the image path), painted in order,
    0 = unsegmented; the shape comes from the benchmark's image size."""

    def __init__(self, n: int, shape):
        self.n, self.shape = int(n), tuple(shape)

    def __call__(self, img_path: str):
        import zlib

        import numpy as np
        rs = np.random.RandomState(zlib.crc32(img_path.encode()))
        H, W = self.shape
        ids = np.zeros((H, W), dtype=np.int32)
        for k in range(1, self.n + 1):
            y, x = rs.randint(0, H), rs.randint(0, W)
            ids[y:y + rs.randint(8, max(9, H // 3)), x:x + rs.randint(8, max(9, W // 3))] = k
        return ids


def build_model(args):
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import declip_mm  # noqa: F401
    from declip_mm.registry import SEG_MODELS
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    mcfg = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model))
    if args.random_weights:
        _drop_ckpts(mcfg)
    model = SEG_MODELS.build(mcfg)
    if args.checkpoint:
        from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading
        with mmengine_checkpoint_loading():  # weights_only=True with mmengine's run-state allow-list
            load_checkpoint(model, args.checkpoint, map_location='cpu')
    return cfg, model


def run(args) -> dict:
    from mmseg.structures import SegDataSample
    cfg, model = build_model(args)
    device = torch.device(args.device)
    model = model.to(device).eval()
    H, W = args.size
    g = torch.Generator().manual_seed(0)
    if getattr(model, 'uses_regions', False):
        model.proxy.mask_source = RandomRegions(args.regions, (H, W))

    def batch():
        inputs = [torch.randint(0, 256, (3, H, W), generator=g, dtype=torch.uint8) for _ in range(args.batch)]
        samples = [SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), img_path=f'bench_{i}.jpg'))
                   for i in range(args.batch)]
        return dict(inputs=inputs, data_samples=samples)

    def step():
        data = model.data_preprocessor(batch(), False)
        with torch.no_grad(), torch.autocast(device.type, dtype=getattr(torch, args.amp_dtype),
                                             enabled=args.amp and device.type == 'cuda'):
            model.predict(data['inputs'], data['data_samples'])
        if device.type == 'cuda':
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    flops_img = None
    if not args.no_flops:  # one untimed FlopCounterMode pass (sliding windows, global view and head included)
        flops_img = count_flops(step)[1] / args.batch
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    dt = time.perf_counter() - t0
    n = args.iters * args.batch
    res = dict(config=args.config, device=str(device), batch=args.batch, size=[H, W], iters=args.iters,
               images_per_s=round(n / dt, 3), s_per_image=round(dt / n, 4),
               num_test_classes=(len(model.test_class_names) if hasattr(model, 'test_class_names')
                                 else getattr(model, 'num_classes', None)))
    if device.type == 'cuda':
        res['peak_gpu_mem_mib'] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        res['gpu'] = torch.cuda.get_device_name()
    res['peak_rss_mib'] = round(peak_mb('cpu'), 1)
    peak_tf = peak_tflops(device_name(device), args.peak_tflops)
    res.update(amp_dtype=args.amp_dtype if (args.amp and device.type == 'cuda') else 'float32',
               flops_per_image=flops_img, peak_tflops=peak_tf, mfu=mfu(flops_img, n / dt, peak_tf))
    print(res)
    print(f'FLOPs per image {format_flops(flops_img)}; MFU '
          + (f"{100 * res['mfu']:.1f} %" if res['mfu'] is not None else 'n/a (--peak-tflops)'))
    return res
