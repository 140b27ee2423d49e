"""Detection test speed (images/s) and peak memory of a detector config (configs/fvit/*, configs/ovdquo/*).

    python tools/benchmark.py det CONFIG [--checkpoint CKPT] [--num-images 50] [--warmup 5] [--batch 1]
                                         [--source synthetic|dataset] [--amp] [--device cuda]

``synthetic`` feeds random images at the config's test size (no dataset needed); ``dataset`` uses the config's
test dataloader (includes data loading).  Peak memory: CUDA max allocated (GPU) or peak RSS (CPU).  FLOPs count
matrix products and convolutions (``FlopCounterMode``): for OV-DQUO the deformable-attention sampling, RoIAlign
and NMS are not counted (no matmul), their linear projections are.
"""
import time

from .common import add_config_arguments, load_config, peak_mb
from .flops import add_peak_argument, count_flops, device_name, format_flops, mfu, peak_tflops


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--random-weights', action='store_true',
                        help='drop the checkpoint files of the config; random text embeddings when their file is '
                             'missing (speed and FLOPs are unchanged)')
    parser.add_argument('--num-images', type=int, default=50)
    parser.add_argument('--warmup', type=int, default=5, help='warm-up batches (not timed)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--source', choices=['synthetic', 'dataset'], default='synthetic')
    parser.add_argument('--size', type=int, default=None, help='synthetic image side (default: config test size)')
    parser.add_argument('--amp', action='store_true', help='autocast (CUDA) in --amp-dtype')
    parser.add_argument('--amp-dtype', default='bfloat16', choices=['bfloat16', 'float16'])
    parser.add_argument('--device', default=None, help='default: cuda if available else cpu')
    add_peak_argument(parser)


def _test_size(cfg):
    """(H, W) of the synthetic test images: the test pipeline's ``Pad`` size, else its resize target (``Resize``:
    the scale's long side, square; ``DETRResize(scale=S, max_size=M)``: S x M capped at 4:3, i.e. R x R for the
    OV-DQUO ViT configs that pad to R x R, 800 x 1067 for short side 800 / long side 1333)."""
    pipeline = cfg.test_dataloader.dataset.get('pipeline', [])
    for t in pipeline:
        if t.get('type') == 'Pad' and t.get('size'):
            return tuple(t['size'])
    for t in pipeline:
        if t.get('type') in ('Resize', 'ResizeAtLeastOnePixel'):
            s = t['scale']
            return (max(s), max(s))
        if t.get('type') == 'DETRResize':
            s = int(t['scale'])
            m = t.get('max_size')
            return (s, s if m is not None and m <= s else min(int(m or s * 4 // 3), round(s * 4 / 3)))
    return (640, 640)


def _synthetic_batches(size, batch, n, seed=0):
    import torch
    from mmdet.structures import DetDataSample
    g = torch.Generator().manual_seed(seed)
    H, W = size
    for _ in range(n):
        inputs, samples = [], []
        for _ in range(batch):
            inputs.append(torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=g))
            s = DetDataSample()
            s.set_metainfo(dict(img_shape=(H, W), ori_shape=(H, W), scale_factor=(1.0, 1.0), pad_shape=(H, W),
                                batch_input_shape=(H, W), img_id=0, img_path=''))
            samples.append(s)
        yield dict(inputs=inputs, data_samples=samples)


def _random_weights(cfg) -> None:
    import os.path as osp

    import torch
    import torch.nn.functional as F

    from .seg import _drop_ckpts
    _drop_ckpts(cfg.model)
    m = cfg.model
    if isinstance(m.get('text_embeddings'), str) and not osp.isfile(m['text_embeddings']):  # OV-DQUO: random rows
        m['text_embeddings'] = None
        m.pop('wildcard_embeddings', None)
    bh = cfg.model.get('roi_head', {}).get('bbox_head', {})
    if isinstance(bh.get('text_embeddings'), str) and not osp.isfile(bh['text_embeddings']):
        g = torch.Generator().manual_seed(0)
        bh['text_embeddings'] = F.normalize(torch.randn(bh['num_classes'] + 1, bh['fc_out_channels'], generator=g),
                                            dim=-1)


def run(args) -> dict:
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import declip_mm  # noqa: F401
    from mmdet.registry import MODELS

    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.random_weights:
        _random_weights(cfg)
    model = MODELS.build(cfg.model)
    if not args.checkpoint:  # random weights: initialised as for training (DETR-style models leave some empty)
        model.init_weights()
    if args.checkpoint:
        from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading
        with mmengine_checkpoint_loading():  # weights_only=True with mmengine's run-state allow-list
            load_checkpoint(model, args.checkpoint, map_location='cpu')
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(model).to(device).eval()
    size = (args.size, args.size) if args.size else _test_size(cfg)
    total = args.warmup + max(1, -(-args.num_images // args.batch))
    if args.source == 'dataset':
        from mmengine.runner import Runner
        loader = Runner.build_dataloader(cfg.test_dataloader)
        batches = iter(loader)
    else:
        batches = _synthetic_batches(size, args.batch, total)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    amp = (torch.autocast('cuda', dtype=getattr(torch, args.amp_dtype))
           if (args.amp and device.startswith('cuda')) else None)
    n_img, t0, flops_img = 0, None, None
    with torch.no_grad():
        for i in range(total):
            try:
                data = next(batches)
            except StopIteration:
                break
            if i == args.warmup and not args.no_flops:  # one untimed FlopCounterMode pass
                if amp is not None:
                    with amp:
                        _, f = count_flops(model.test_step, data)
                else:
                    _, f = count_flops(model.test_step, data)
                flops_img = f / len(data['inputs'])
            if i == args.warmup:
                if device.startswith('cuda'):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            if amp is not None:
                with amp:
                    model.test_step(data)
            else:
                model.test_step(data)
            if i >= args.warmup:
                n_img += len(data['inputs'])
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0 if t0 is not None else float('nan')
    peak = peak_mb(device)
    ips = n_img / elapsed if n_img else 0.0
    peak_tf = peak_tflops(device_name(device), args.peak_tflops)
    result = dict(config=args.config, device=device if not device.startswith('cuda') else torch.cuda.get_device_name(),
                  source=args.source, image_size=list(size), batch=args.batch, amp=bool(amp), images=n_img,
                  seconds=round(elapsed, 3), images_per_s=round(n_img / elapsed, 3) if n_img else 0.0,
                  peak_memory_mb=round(peak, 1), peak_memory_kind='cuda_max_allocated' if device.startswith('cuda')
                  else 'process_peak_rss', amp_dtype=args.amp_dtype if amp is not None else 'float32',
                  flops_per_image=flops_img, peak_tflops=peak_tf, mfu=mfu(flops_img, ips, peak_tf))
    print(result)
    print(f'FLOPs per image {format_flops(flops_img)}; MFU '
          + (f"{100 * result['mfu']:.1f} %" if result['mfu'] is not None else 'n/a (--peak-tflops)'))
    return result
