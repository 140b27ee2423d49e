"""Distillation input pipeline alone: images/s per worker and through the config's DataLoader.

    python tools/benchmark.py pipeline configs/declip/declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py [--num-images 48]
        [--workers 0 1 2] [--image-size 480 640] [--gpu-images-per-s 40]

The config's training dataset (JPEG decoding + ``DeCLIPGridCrops``: letterboxed student view, VFM view and up to
``max_crops`` teacher crops) runs over generated COCO-sized JPEGs written to a temporary folder (or the config's
own data with ``--real-data``). Reported:

* ``per_worker``: one process calling ``dataset[i]`` -- the rate one DataLoader worker can sustain;
* ``loader``: the config's DataLoader (batch size, collate, ``pin_memory``, ``persistent_workers``) for each
  ``--workers`` value, first batch excluded (worker start-up);
* ``workers_needed``: ``ceil(gpu_images_per_s / per_worker)`` for a GPU consuming ``--gpu-images-per-s`` images/s
  per process (the data loader must exceed the training step rate).
"""
import copy
import math
import os
import os.path as osp
import tempfile
import time

import numpy as np

from .common import add_config_arguments, load_config


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument('--num-images', type=int, default=48, help='images per measurement')
    parser.add_argument('--workers', type=int, nargs='+', default=None,
                        help="DataLoader worker counts to measure (default: 0 and the config's num_workers)")
    parser.add_argument('--image-size', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'),
                        help='generated JPEG size (COCO images are about 480 x 640)')
    parser.add_argument('--real-data', action='store_true', help="use the config's dataset instead")
    parser.add_argument('--gpu-images-per-s', type=float, default=None,
                        help='training images/s of one GPU process, to size the worker count')


def _write_jpegs(root: str, n: int, hw, seed: int = 0) -> None:
    from PIL import Image
    from declip_mm.datasets.synthetic_images import make_image
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        img, _, _ = make_image(rng)
        img = np.asarray(Image.fromarray(img).resize((hw[1], hw[0])))
        noise = rng.integers(0, 24, size=img.shape, dtype=np.uint8)  # texture, so JPEG decoding is realistic
        Image.fromarray(np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)).save(
            osp.join(root, f'{i:06d}.jpg'), quality=90)


def _loader_cfg(cfg, args, tmp):
    dl = copy.deepcopy(cfg['train_dataloader'])
    if not args.real_data:
        ds = dl['dataset']
        ds['data_root'] = tmp
        ds['ann_file'] = ''
        ds['data_prefix'] = dict(img='')
        ds.pop('synthetic', None)
    return dl


def run(args) -> dict:
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import declip_mm  # noqa: F401
    from declip_mm.registry import DATASETS
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'declip_mm'))
    tmp = tempfile.mkdtemp(prefix='declip_pipeline_')
    if not args.real_data:
        _write_jpegs(tmp, args.num_images, args.image_size)
    dl_cfg = _loader_cfg(cfg, args, tmp)
    dataset = DATASETS.build(copy.deepcopy(dl_cfg['dataset']))
    n = min(args.num_images, len(dataset))
    torch.set_num_threads(1)  # a DataLoader worker runs single-threaded (mmengine sets opencv threads to 0 too)
    sample = dataset[0]
    t0 = time.perf_counter()
    for i in range(n):
        dataset[i]
    per_worker = n / (time.perf_counter() - t0)
    inp = sample['inputs']
    shapes = {k: list(v.shape) for k, v in inp.items() if hasattr(v, 'shape')}
    workers = args.workers if args.workers is not None else sorted({0, int(dl_cfg.get('num_workers', 0))})
    batch = int(dl_cfg.get('batch_size', 1))
    loader_rows = []
    for w in workers:
        c = copy.deepcopy(dl_cfg)
        c['num_workers'] = w
        c['persistent_workers'] = bool(c.get('persistent_workers', False)) and w > 0
        c['pin_memory'] = bool(c.get('pin_memory', False)) and torch.cuda.is_available()
        loader = Runner.build_dataloader(c, seed=0)
        it = iter(loader)
        next(it)  # worker start-up and the first batch are not timed
        got, t0 = 0, time.perf_counter()
        while got + batch <= n - batch:
            try:
                b = next(it)
            except StopIteration:
                break
            got += len(b['inputs']['student'])
        dt = time.perf_counter() - t0
        loader_rows.append(dict(workers=w, images_per_s=got / dt if got else None, images=got,
                                pin_memory=c['pin_memory'], persistent_workers=c['persistent_workers']))
        del it, loader
    res = dict(config=args.config, cpu_count=os.cpu_count(), image_size=list(args.image_size),
               sample_shapes=shapes, per_worker_images_per_s=per_worker, loader=loader_rows,
               config_workers=int(cfg['train_dataloader'].get('num_workers', 0)),
               config_pin_memory=bool(cfg['train_dataloader'].get('pin_memory', False)),
               config_persistent_workers=bool(cfg['train_dataloader'].get('persistent_workers', False)))
    if args.gpu_images_per_s:
        res['gpu_images_per_s'] = args.gpu_images_per_s
        res['workers_needed'] = math.ceil(args.gpu_images_per_s / per_worker)
    print(f"pipeline [{args.config}] on {res['cpu_count']} CPU(s); sample: {shapes}")
    print(f'  per worker (single process): {per_worker:.2f} images/s')
    for r in loader_rows:
        print(f"  DataLoader workers={r['workers']}: "
              + (f"{r['images_per_s']:.2f} images/s" if r['images_per_s'] else 'n/a (too few images)')
              + f" (pin_memory={r['pin_memory']}, persistent={r['persistent_workers']})")
    if 'workers_needed' in res:
        print(f"  a GPU at {args.gpu_images_per_s:.1f} images/s needs >= {res['workers_needed']} workers "
              f"(config: {res['config_workers']})")
    return res
