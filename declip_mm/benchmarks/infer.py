"""Open-vocabulary inference speed (OVDetInferencer / OVSegInferencer): images/s over a folder, split into text
encoding (first call vs cached in memory vs cached on disk) and image forward.

    python tools/benchmark.py infer det configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py [--checkpoint CKPT]
    python tools/benchmark.py infer zeroshot configs/zeroshot_seg/trainingfree_eva02-b16-declip_voc20-448.py --random-weights
        [--images DIR | --num-images 20] [--texts "cat, dog, ..."] [--device cpu] [--batch-size 1]

Without ``--images`` it writes ``--num-images`` crops of matplotlib's sample photo (grace_hopper.jpg) to a
temporary folder.  The text cache is a fresh temporary directory, so the first encoding is never a cache hit.
``images_per_s`` counts the whole call (pipeline, forward, no pictures); ``forward_images_per_s`` only
``model.test_step``.
"""
import copy
import os
import os.path as osp
import tempfile
import time

import torch

from .common import add_config_arguments, load_config
from .seg import _drop_ckpts

DEFAULT_TEXTS = 'person, necktie, military uniform, flag, chair, wall, glasses, medal, button, curtain'


def add_arguments(parser):
    parser.add_argument('kind', choices=['det', 'seg', 'zeroshot'])
    add_config_arguments(parser)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--random-weights', action='store_true', help='drop the CLIP checkpoints in the config')
    parser.add_argument('--images', default=None, help='folder of images (default: generated crops)')
    parser.add_argument('--num-images', type=int, default=20)
    parser.add_argument('--texts', default=DEFAULT_TEXTS)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')


def sample_images(out_dir: str, n: int):
    """``n`` different crops (320-512 px) of matplotlib's grace_hopper.jpg written to ``out_dir``."""
    import matplotlib
    import mmcv
    import numpy as np
    img = mmcv.imread(osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))
    rng = np.random.RandomState(0)
    h, w = img.shape[:2]
    for i in range(n):
        ch, cw = rng.randint(int(h * 0.6), h + 1), rng.randint(int(w * 0.6), w + 1)
        y, x = rng.randint(0, h - ch + 1), rng.randint(0, w - cw + 1)
        mmcv.imwrite(img[y:y + ch, x:x + cw], osp.join(out_dir, f'img_{i:03d}.jpg'))
    return out_dir


def run(args) -> dict:
    from declip_mm.apis import OVDetInferencer, OVSegInferencer
    cfg = load_config(args.config, args.cfg_options)
    if args.random_weights:
        mcfg = copy.deepcopy(cfg.model.to_dict())
        _drop_ckpts(mcfg)
        cfg.model = mcfg
    tmp = tempfile.TemporaryDirectory()
    cache = osp.join(tmp.name, 'cache')
    images = args.images
    if not images:
        images = osp.join(tmp.name, 'images')
        os.makedirs(images)
        sample_images(images, args.num_images)
    t0 = time.perf_counter()
    if args.kind == 'det':
        inf = OVDetInferencer(cfg, args.checkpoint, device=args.device, cache_dir=cache, show_progress=False)
    else:
        inf = OVSegInferencer(cfg, args.checkpoint, device=args.device, cache_dir=cache, show_progress=False)
    build_s = time.perf_counter() - t0

    def text_time():
        inf._vocab_key = None
        t = time.perf_counter()
        inf.set_vocabulary(args.texts)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    encoder = inf.text_encoder if args.kind == 'det' else inf.model.text_encoder
    text_first = text_time()
    text_mem = text_time()
    encoder._cache = {}
    text_disk = text_time()
    inf(images, texts=args.texts, batch_size=args.batch_size, progress=False)  # warm-up pass
    t = time.perf_counter()
    res = inf(images, texts=args.texts, batch_size=args.batch_size, progress=False)
    total = time.perf_counter() - t
    n = len(res['predictions'])
    out = dict(kind=args.kind, config=args.config, device=args.device, images=n, classes=len(inf.vocabulary),
               build_s=round(build_s, 3), text_first_s=round(text_first, 4), text_cached_memory_s=round(text_mem, 4),
               text_cached_disk_s=round(text_disk, 4), call_s=round(total, 3),
               forward_s=round(inf.timings['forward_s'], 3), images_per_s=round(n / total, 3),
               forward_images_per_s=round(n / max(inf.timings['forward_s'], 1e-9), 3))
    for k, v in out.items():
        print(f'{k:22s} {v}')
    tmp.cleanup()
    return out
