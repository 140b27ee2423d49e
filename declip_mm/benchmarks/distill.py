"""DeCLIP distillation step: images/s, peak memory, FLOPs and MFU, broken down into student fwd/bwd, teacher crops,
VFM, losses.

    python tools/benchmark.py distill configs/declip/declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py [--batch-size 4] [--iters 10]
        [--dtype bfloat16] [--compile] [--peak-tflops 989.4]

FLOPs per image and stage come from one extra step under ``FlopCounterMode`` (see ``flops.py``); MFU = total
FLOPs per image x images/s / the device's dense bf16 peak.

Random weights (``--random-weights`` is implied when the config's checkpoint files are missing) and random images
of ``--image-size`` are pushed through the config's own transform; nothing is downloaded.
"""
import copy
import os.path as osp
import time
from contextlib import nullcontext

import numpy as np
import torch

from .common import add_config_arguments, load_config, peak_mb
from .flops import add_peak_argument, count_flops, device_name, format_flops, mfu, peak_tflops


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument('--batch-size', type=int, default=None, help='per-device batch (default: the config)')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations')
    parser.add_argument('--image-size', type=int, nargs=2, default=(480, 640), help='H W of the random images')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', default='auto', choices=['auto', 'float16', 'bfloat16', 'float32'],
                        help="autocast dtype ('auto': the config's AmpOptimWrapper dtype, else float32)")
    parser.add_argument('--random-weights', action='store_true', help='ignore checkpoint files in the config')
    parser.add_argument('--compile', action='store_true', help='torch.compile student and teachers (model.compile)')
    add_peak_argument(parser)
    parser.add_argument('--flops-only', action='store_true', help='one FLOP-counting step, no timing')


def _sync(device):
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def _strip_checkpoints(cfg, force):
    m = cfg['model']
    for key in ('student', 'vfm'):
        sub = m.get(key)
        if sub and sub.get('checkpoint') and (force or not osp.isfile(sub['checkpoint'])):
            sub['checkpoint'] = None


def _make_batch(cfg, batch, hw, seed=0):
    from mmengine.dataset import Compose, default_collate
    import declip_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope('declip_mm')
    pipeline = Compose(copy.deepcopy(cfg['train_dataloader']['dataset']['pipeline']))
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(batch):
        img = rng.integers(0, 255, size=(hw[0], hw[1], 3), dtype=np.uint8)
        r = pipeline(dict(img=img, img_path=f'random_{i}', sample_idx=i, epoch=0))
        samples.append(dict(inputs=r['inputs'], data_samples=r['data_samples']))
    return default_collate(samples)


def run(args) -> dict:
    from mmengine.registry import init_default_scope
    import declip_mm  # noqa: F401
    from declip_mm.models.losses.declip_losses import boxes_to_rois, content_loss, context_loss, roi_align_1x1
    from declip_mm.registry import MODELS

    cfg = load_config(args.config, args.cfg_options)
    _strip_checkpoints(cfg, args.random_weights)
    init_default_scope('declip_mm')
    device = torch.device(args.device)
    if args.compile:
        cfg['model']['compile'] = True
    model = MODELS.build(cfg['model']).to(device)
    model.train()
    batch = args.batch_size or cfg['train_dataloader']['batch_size']
    data = _make_batch(cfg, batch, args.image_size)
    ow_cfg = cfg.get('optim_wrapper', {})
    dtype_name = args.dtype
    if dtype_name == 'auto':
        dtype_name = ow_cfg.get('dtype', 'float16') if ow_cfg.get('type') == 'AmpOptimWrapper' else 'float32'
        if dtype_name is None:
            dtype_name = 'float16'
    dtype = getattr(torch, dtype_name)
    # CUDA: the config's / requested autocast dtype; CPU: bf16 autocast only when asked for (--dtype bfloat16)
    amp = dtype != torch.float32 and (device.type == 'cuda' or args.dtype == 'bfloat16')
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if amp else nullcontext
    from mmengine.optim import build_optim_wrapper
    ocfg = copy.deepcopy(cfg['optim_wrapper'])
    if amp and device.type == 'cuda':
        ocfg['type'] = 'AmpOptimWrapper'
        ocfg['dtype'] = dtype_name
    else:  # fp32 optimizer (mmengine's AmpOptimWrapper is CUDA only; on CPU the step below autocasts itself)
        ocfg['type'] = 'OptimWrapper'
        ocfg.pop('dtype', None)
        ocfg.pop('loss_scale', None)
    ow = build_optim_wrapper(model, ocfg)

    parts = dict(student_fwd=0.0, student_bwd=0.0, teacher_crops=0.0, vfm=0.0, losses=0.0, optimizer=0.0,
                 data_preprocessor=0.0)

    flops = {}

    def counted(name, fn, *a):
        """fn(*a), its FLOPs added to ``flops[name]`` when counting."""
        if counting:
            out, f = count_flops(fn, *a)
            flops[name] = flops.get(name, 0) + f
            return out
        return fn(*a)

    def stage_losses(out, rois, f_t, vfm):
        dense = out['dense']
        if model.normalize_dense_before_roi:
            dense = torch.nn.functional.normalize(dense, dim=1)
        loss = model.content_weight * content_loss(roi_align_1x1(dense, rois), f_t)
        if vfm is not None and model.context_weight > 0:
            loss = loss + model.context_weight * context_loss(out['context'], vfm, model.context_loss_type,
                                                              model.kl_temperature)
        return loss

    counting = False

    def step(timed):
        t = {}
        _sync(device)
        t0 = time.perf_counter()
        d = model.data_preprocessor(data, True)
        inp = d['inputs']
        _sync(device)
        t['data_preprocessor'] = time.perf_counter() - t0
        with autocast():
            t0 = time.perf_counter()
            out = counted('student_fwd', model.student_forward, inp['student'])
            _sync(device)
            t['student_fwd'] = time.perf_counter() - t0
            t0 = time.perf_counter()
            rois, valid = boxes_to_rois(inp['boxes'], tuple(out['dense'].shape[-2:]))
            f_t = counted('teacher_crops', model.teacher_crop_embeddings, inp['crops'][valid])
            _sync(device)
            t['teacher_crops'] = time.perf_counter() - t0
            vfm = None
            if model.use_vfm:
                t0 = time.perf_counter()
                vfm = counted('vfm', model.vfm_features, inp['vfm'])
                _sync(device)
                t['vfm'] = time.perf_counter() - t0
            t0 = time.perf_counter()
            loss = counted('losses', stage_losses, out, rois, f_t, vfm)
            _sync(device)
            t['losses'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        counted('student_bwd', ow.backward, loss)
        _sync(device)
        t['student_bwd'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ow.step()
        ow.zero_grad()
        _sync(device)
        t['optimizer'] = time.perf_counter() - t0
        if timed:
            for k, v in t.items():
                parts[k] += v
        return float(loss.detach())

    for _ in range(args.warmup):
        step(False)
    if not args.no_flops or args.flops_only:
        counting = True
        step(False)
        counting = False
    if args.flops_only:
        per_img = {k: v / batch for k, v in flops.items()}
        print('FLOPs per image (FlopCounterMode): ' + ', '.join(f'{k} {format_flops(v)}' for k, v in per_img.items())
              + f'; total {format_flops(sum(per_img.values()))}')
        return dict(config=args.config, batch=batch, student_size=int(data['inputs']['student'].shape[-1]),
                    crops_per_batch=int(data['inputs']['boxes'][..., 4].sum()), flops_per_image=per_img,
                    total_flops_per_image=sum(per_img.values()))
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        loss = step(True)
    _sync(device)
    total = time.perf_counter() - t0
    # plain train_step (what the runner executes), timed separately
    _sync(device)
    t1 = time.perf_counter()
    for _ in range(args.iters):
        model.train_step(data, ow)
    _sync(device)
    total_ts = time.perf_counter() - t1
    dev_name = device_name(device)
    peak = peak_tflops(dev_name, args.peak_tflops)
    flops_img = {k: v / batch for k, v in flops.items()} if flops else None
    total_img = sum(flops_img.values()) if flops_img else None
    res = dict(
        config=args.config, device=dev_name,
        dtype=dtype_name if amp else 'float32', batch=batch,
        student_size=int(data['inputs']['student'].shape[-1]),
        crops_per_batch=int(data['inputs']['boxes'][..., 4].sum()),
        images_per_s=batch * args.iters / total, images_per_s_train_step=batch * args.iters / total_ts,
        ms_per_step={k: 1000 * v / args.iters for k, v in parts.items()},
        peak_mem_gib=(torch.cuda.max_memory_allocated(device) / 2 ** 30) if device.type == 'cuda' else None,
        peak_rss_gib=peak_mb('cpu') / 1024,
        flops_per_image=flops_img, total_flops_per_image=total_img, peak_tflops=peak,
        achieved_tflops=(total_img * batch * args.iters / total / 1e12) if total_img else None,
        mfu=mfu(total_img, batch * args.iters / total, peak), compiled=bool(args.compile),
        last_loss=loss)
    print(f"distill benchmark [{res['device']}, {res['dtype']}, batch {batch}, "
          f"{res['student_size']} px, {res['crops_per_batch']} crops]")
    print(f"  images/s: {res['images_per_s']:.2f} (instrumented)  {res['images_per_s_train_step']:.2f} (train_step)")
    for k, v in res['ms_per_step'].items():
        print(f'  {k:18s} {v:8.1f} ms')
    if res['peak_mem_gib'] is not None:
        print(f"  peak memory: {res['peak_mem_gib']:.2f} GiB")
    print(f"  peak process RSS: {res['peak_rss_gib']:.2f} GiB")
    if flops_img:
        print('  FLOPs per image (FlopCounterMode): ' + ', '.join(f'{k} {format_flops(v)}'
                                                              for k, v in flops_img.items()))
        print(f"  total {format_flops(total_img)}/image, achieved {res['achieved_tflops']:.3f} TFLOP/s, MFU "
              + (f"{100 * res['mfu']:.1f} % of {peak} TFLOP/s" if res['mfu'] is not None
                 else 'n/a (unknown device peak: --peak-tflops)'))
    return res
