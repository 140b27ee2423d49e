"""backbone: images/s and peak memory of DeCLIPViT vs open_clip's own encode_image (same model, same input)."""
import time

import torch

from .common import current_mb, peak_mb, reset_peak


def add_arguments(p):
    p.add_argument('--model', default='EVA02-B-16')
    p.add_argument('--size', type=int, nargs='+', default=[224], help='H [W]')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--modes', nargs='+', default=['vanilla', 'csa'])
    p.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')


def _time(fn, x, iters, warmup, device):
    """-> (seconds per call, peak MB above what was in use before the timed calls)."""
    for _ in range(warmup):
        fn(x)
    reset_peak(device)
    base = current_mb(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn(x)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters, peak_mb(device) - base


def run(args):
    import open_clip

    from declip_mm.models.backbones import DeCLIPViT, clip_family
    dtype = dict(fp32=torch.float32, bf16=torch.bfloat16, fp16=torch.float16)[args.dtype]
    H = args.size[0]
    W = args.size[-1]
    torch.manual_seed(0)
    ref = open_clip.create_model(args.model, pretrained=None, force_quick_gelu=clip_family(args.model) == 'openai',
                                 force_image_size=(H, W)).eval()
    # same native grid as the reference, so neither side resizes position embeddings
    grid = dict(image_size=[H, W])
    if clip_family(args.model) == 'eva':
        grid['timm_kwargs'] = dict(img_size=(H, W))
    bb = DeCLIPViT(args.model, model_overrides=dict(vision_cfg=grid), out_types=('dense', ), frozen=True)
    bb.visual.load_state_dict(ref.visual.state_dict())
    ref.to(args.device, dtype)
    bb.to(args.device, dtype)
    x = torch.randn(args.batch, 3, H, W, device=args.device, dtype=dtype)
    results = {'model': args.model, 'input': [args.batch, 3, H, W], 'device': args.device, 'dtype': args.dtype}
    rows = []
    with torch.inference_mode():
        s, mb = _time(ref.encode_image, x, args.iters, args.warmup, args.device)
        rows.append(('open_clip encode_image', args.batch / s, mb))
        s, mb = _time(lambda t: bb.extract(t, ('cls', )), x, args.iters, args.warmup, args.device)
        rows.append(('DeCLIPViT cls (vanilla)', args.batch / s, mb))
        for mode in args.modes:
            bb.dense_mode = mode
            s, mb = _time(lambda t: bb.extract(t, ('dense', )), x, args.iters, args.warmup, args.device)
            rows.append((f'DeCLIPViT dense ({mode})', args.batch / s, mb))
    print(f'{args.model} {args.batch}x3x{H}x{W} {args.dtype} on {args.device} '
          f'(peak MB = peak memory of the timed calls above what was already in use: CUDA allocator, or process RSS on CPU)')
    for name, ips, mb in rows:
        print(f'  {name:28s} {ips:8.2f} img/s   peak +{mb:8.1f} MB')
    results['rows'] = [dict(name=n, images_per_s=i, peak_mb=m) for n, i, m in rows]
    return results
