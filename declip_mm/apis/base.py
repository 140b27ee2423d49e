"""What the detection and segmentation inferencers share: checkpoint fit check, text cache, the run loop."""
import os
import os.path as osp
import time
import warnings
from typing import Callable, Dict, List, Optional

import mmcv
import mmengine
import numpy as np
import torch
import torch.nn as nn
from mmengine.utils import ProgressBar

from declip_mm.utils.remote_files import is_remote

DEFAULT_CACHE_DIR = osp.join(os.environ.get('XDG_CACHE_HOME', osp.expanduser('~/.cache')), 'declip_mm',
                             'text_embeddings')


IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def default_cache_dir() -> str:
    """``$DECLIP_MM_TEXT_CACHE`` or ``~/.cache/declip_mm/text_embeddings``."""
    return os.environ.get('DECLIP_MM_TEXT_CACHE', DEFAULT_CACHE_DIR)


def load_fitting_checkpoint(model: nn.Module, weights: str, config_name: str = 'the config') -> dict:
    """Load ``weights`` (an mmengine checkpoint or a bare state dict) strictly into ``model``.

    Raises ``ValueError`` naming the file and the first missing / unexpected / wrongly shaped keys when the
    checkpoint does not fit the model built from the config.  Returns the checkpoint's ``meta`` dict.
    """
    from declip_mm.utils.remote_files import resolve_file
    from declip_mm.utils.run_checkpoints import load_checkpoint_file
    if not osp.isfile(resolve_file(weights)):  # http(s):// / hf-hub: weights are downloaded once into the cache
        raise FileNotFoundError(f'checkpoint not found: {weights}')
    ckpt = load_checkpoint_file(resolve_file(weights), map_location='cpu')  # weights_only=True, mmengine run-state allow-list
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f'{weights} holds no model state_dict (is it a checkpoint of this project?)')
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f'{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}' for k, v in own.items()
              if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f'{len(shapes)} shape mismatch(es), e.g. {shapes[:3]}')
        if missing:
            parts.append(f'{len(missing)} model key(s) missing from the checkpoint, e.g. {missing[:3]}')
        if unexpected:
            parts.append(f'{len(unexpected)} checkpoint key(s) the model does not have, e.g. {unexpected[:3]}')
        raise ValueError(f'checkpoint {weights} does not fit the model of {config_name}: ' + '; '.join(parts))
    model.load_state_dict(sd, strict=True)
    return ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}


def drop_missing_init_files(model_cfg, weights: Optional[str]) -> None:
    """With a trained checkpoint, initial CLIP files named in the config are not needed (the checkpoint holds the
    weights): drop paths that do not exist so that building the model does not fail on them."""
    if weights is None:
        return
    for key in ('backbone', 'text_encoder'):
        sub = model_cfg.get(key)
        if isinstance(sub, dict) and sub.get('checkpoint') and not osp.isfile(str(sub['checkpoint'])) \
                and not is_remote(sub['checkpoint']):  # a URL / hf-hub: file is fetched (F-ViT's text tower)
            sub['checkpoint'] = None


def palette_for(n: int, seed: int = 42) -> List[tuple]:
    """``n`` distinct-enough RGB colours (fixed seed, so a class keeps its colour across runs)."""
    rng = np.random.RandomState(seed)
    return [tuple(int(c) for c in rng.randint(40, 256, size=3)) for _ in range(n)]


class OVInferencerMixin:
    """The run loop of both inferencers: ``__call__(images, texts=...)``.

    Per batch: the task pipeline (mmdet's / mmseg's ``InferencerLoader`` test pipeline), ``collate_fn``,
    ``model.test_step``, pictures through the config's visualizer, plain dicts.  An image that cannot be read is
    skipped and listed in ``result['skipped']``; the run continues.  ``self.timings`` holds the seconds spent in
    text encoding (``text_s``, 0 on a cached vocabulary) and in image forwards (``forward_s``) of the last call.
    """

    task = ''

    def _init_collate(self, cfg):
        """``test_dataloader.collate_fn`` or mmengine's ``pseudo_collate`` (looked up in mmengine's registry: the
        default lookup searches an mmdet / mmseg FUNCTIONS scope that does not exist and warns)."""
        from mmengine.dataset import pseudo_collate
        from mmengine.registry import FUNCTIONS
        fn = (cfg.get('test_dataloader') or {}).get('collate_fn')
        if fn is None:
            return pseudo_collate
        return FUNCTIONS.get(fn['type'] if isinstance(fn, dict) else fn)

    def _inputs_to_list(self, inputs) -> list:
        """A path, a folder (its image files, sorted), an array, or a list of those -> flat list."""
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        out = []
        for it in items:
            if isinstance(it, str) and osp.isdir(it):
                out += sorted(osp.join(it, f) for f in os.listdir(it) if f.lower().endswith(IMG_EXTENSIONS))
            else:
                out.append(it)
        return out

    def _init_text_cache(self, cache_dir: Optional[str]) -> None:
        self.cache_dir = default_cache_dir() if cache_dir is None else (cache_dir or None)
        self.vocabulary = None
        self.timings: Dict[str, float] = {}

    def _set_encoder_cache(self, encoder) -> None:
        encoder.cache_dir = self.cache_dir

    def _run(self, inputs, texts, batch_size: int, out_dir: str, show: bool, wait_time: float,
             return_datasamples: bool, progress: Optional[bool], vis_kwargs: dict, to_dict: Callable,
             **vocab_kwargs) -> dict:
        t0 = time.perf_counter()
        self.set_vocabulary(texts, **vocab_kwargs)
        text_s = time.perf_counter() - t0
        ori = self._inputs_to_list(inputs)
        if not ori:
            raise ValueError(f'no images found in {inputs!r}')
        progress = self.show_progress if progress is None else progress
        bar = ProgressBar(len(ori)) if progress and len(ori) > 1 else None
        preds_all, dicts, skipped = [], [], []
        forward_s = 0.0
        vis_dir = osp.join(out_dir, 'vis') if out_dir else ''
        for start in range(0, len(ori), batch_size):
            items = []
            for k, inp in enumerate(ori[start:start + batch_size]):
                try:
                    items.append((start + k, inp, self.pipeline(inp)))
                except Exception as e:  # unreadable / missing image: skip, list, continue
                    name = inp if isinstance(inp, str) else f'array #{start + k}'
                    skipped.append(dict(input=name, error=f'{type(e).__name__}: {e}'))
                    warnings.warn(f'skipped {name}: {type(e).__name__}: {e}')
            if items:
                data = self.collate_fn([d for _, _, d in items])
                t1 = time.perf_counter()
                preds = self.forward(data)
                forward_s += time.perf_counter() - t1
                for (idx, inp, _), pred in zip(items, preds):
                    name = osp.basename(inp) if isinstance(inp, str) else f'{idx:08d}.jpg'
                    if show or vis_dir:
                        self._draw(inp, pred, name, show, wait_time, vis_dir, **vis_kwargs)
                    d = to_dict(pred)
                    d['input'] = inp if isinstance(inp, str) else f'array #{idx}'
                    dicts.append(d)
                    if return_datasamples:
                        preds_all.append(pred)
            if bar is not None:
                bar.update(len(ori[start:start + batch_size]))
        if bar is not None:
            print(flush=True)
        self.timings = dict(text_s=text_s, forward_s=forward_s, images=len(dicts))
        out = dict(predictions=dicts, skipped=skipped, classes=list(self.vocabulary.names))
        if return_datasamples:
            out['datasamples'] = preds_all
        return out

    def _read_rgb(self, inp) -> np.ndarray:
        if isinstance(inp, str):
            return mmcv.imfrombytes(mmengine.fileio.get(inp), channel_order='rgb')
        return np.ascontiguousarray(inp[:, :, ::-1])  # arrays are BGR as in mmdet / mmseg
