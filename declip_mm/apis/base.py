"""What the detection and segmentation inferencers share: input listing and output names, checks made before the
model build (device, CLIP files), the checkpoint fit check, the text cache and the run loop."""
import json
import os
import os.path as osp
import time
import warnings
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence

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


def check_device(device: Optional[str]) -> None:
    """``ValueError`` for a device string torch does not know, or a CUDA device this machine does not have."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f'unknown device {device!r} (use e.g. cpu, cuda, cuda:0)') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r}: no CUDA GPU is available on this machine (use cpu)')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) '
                             f'(cuda:0 .. cuda:{torch.cuda.device_count() - 1})')


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')


def list_inputs(inputs) -> list:
    """A path, a folder (its image files, sorted; not recursive), an array (BGR) or a list of those -> flat list.

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a folder without image files
    or no input at all (URLs are passed on unchecked)."""
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    out = []
    for it in items:
        if isinstance(it, str) and osp.isdir(it):
            files = sorted(f for f in os.listdir(it) if f.lower().endswith(IMG_EXTENSIONS)
                           and osp.isfile(osp.join(it, f)))
            if not files:
                raise ValueError(f'no image files in {it} (looked for {" ".join(IMG_EXTENSIONS)})')
            out += [osp.join(it, f) for f in files]
        elif isinstance(it, str) and '://' not in it and not osp.exists(it):
            raise FileNotFoundError(f'image not found: {it}')
        else:
            out.append(it)
    if not out:
        raise ValueError('no images given')
    return out


def output_names(inputs: Sequence, first_array: int = 0) -> List[str]:
    """Collision-free output names (relative paths without extension), one per input.

    A file is named after its path relative to the inputs' common folder, without the extension (``photo.jpg`` ->
    ``photo``, as mmdet names its files; ``a/photo.jpg`` and ``b/photo.jpg`` -> ``a/photo``, ``b/photo``); inputs
    that would share a name keep their extension in it (``photo.jpg``, ``photo.png`` -> ``photo_jpg``,
    ``photo_png``); arrays are numbered ``00000000``, ``00000001``, ... from ``first_array``; anything still shared
    (the same file given twice) gets ``_2``, ``_3``.  Names are compared case-insensitively.
    """
    local = [osp.abspath(i) for i in inputs if isinstance(i, str) and '://' not in i]
    root = osp.commonpath([osp.dirname(p) for p in local]) if local else ''
    stems, exts, k = [], [], first_array
    for inp in inputs:
        if isinstance(inp, str):
            rel = osp.relpath(osp.abspath(inp), root) if '://' not in inp else inp.split('?')[0].rsplit('/', 1)[-1]
            stem, ext = osp.splitext(rel)
        else:
            stem, ext = f'{k:08d}', ''
            k += 1
        stems.append(stem)
        exts.append(ext)
    counts = Counter(s.casefold() for s in stems)
    names = [f'{s}_{e[1:]}' if e and counts[s.casefold()] > 1 else s for s, e in zip(stems, exts)]
    taken, out = set(), []
    for n in names:
        cand, i = n, 2
        while cand.casefold() in taken:
            cand, i = f'{n}_{i}', i + 1
        taken.add(cand.casefold())
        out.append(cand)
    return out


def check_weights_present(*modules: nn.Module) -> None:
    """``FileNotFoundError`` naming every CLIP / VFM file a config points at that was not found and that no loaded
    checkpoint replaced (such modules hold random weights: see ``models/backbones/pending_weights.py``)."""
    missing = []
    for mod in modules:
        for m in mod.modules():
            path = getattr(m, '_pending_checkpoint', None)
            if path and (path, type(m).__name__) not in missing:
                missing.append((path, type(m).__name__))
    if missing:
        raise FileNotFoundError(
            'checkpoint file(s) named in the config not found: ' + ', '.join(f'{p} ({n})' for p, n in missing)
            + '; put the file there (or point the config at it with --cfg-options), or pass a trained checkpoint '
            'that holds these weights (weights= / --weights)')


def unlabelled_index(num_classes: int) -> int:
    """The label-map value of pixels that belong to no class: 255 (uint8 maps) up to 255 classes, else 65535."""
    if num_classes <= 255:
        return 255
    if num_classes < 65535:
        return 65535
    raise ValueError(f'{num_classes} classes: label maps hold at most 65534')


def dump_json(obj, path: str) -> None:
    """Write ``obj`` as UTF-8 json (non-ASCII kept readable), atomically (a reader never sees half a file)."""
    d = osp.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


class OVInferencerMixin:
    """The run loop of both inferencers, with mmdet's ``DetInferencer`` / mmseg's ``MMSegInferencer`` behaviour.

    Per batch: the task pipeline (``InferencerLoader`` test pipeline), ``collate_fn``, ``forward`` (``test_step``);
    then per image, as it finishes: the picture (``show`` / ``return_vis`` / ``OUT_DIR/<img_out_dir>/<name><ext>``),
    the prediction dict, its file (``OUT_DIR/<pred_out_dir>/<name>.json`` or ``.png``), ``print_result``,
    ``on_result(dict)``.  File names come from :func:`output_names` (never two images on one file).  An image that
    cannot be read is skipped and listed in ``result['skipped']``; the run continues.  ``self.last_result`` is the
    result dict of the current / last call, filled as images finish (what an interrupted call had done).
    ``self.timings`` holds the seconds spent in text encoding (``text_s``, 0 on a cached vocabulary) and in image
    forwards (``forward_s``).
    Subclasses define ``pred2dict``, ``_save_pred``, ``_draw`` and ``set_vocabulary``.
    """

    pred_subdir = ''

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
        return list_inputs(inputs)

    def _init_text_cache(self, cache_dir: Optional[str]) -> None:
        self.cache_dir = default_cache_dir() if cache_dir is None else (cache_dir or None)
        self.vocabulary = None
        self.timings: Dict[str, float] = {}
        self.last_result: dict = {}
        self._num_arrays = 0

    @property
    def text_encoder_module(self):
        """The module that encodes the vocabulary (the model's own text tower, or the inferencer's)."""
        return getattr(self, 'text_encoder', None) or getattr(self.model, 'text_encoder', None)

    def _run(self, inputs, texts, vocab_kwargs: dict, batch_size: int = 1, out_dir: str = '',
             img_out_dir: str = 'vis', pred_out_dir: str = '', return_vis: bool = False, show: bool = False,
             wait_time: float = 0, draw_pred: bool = True, no_save_vis: bool = False, no_save_pred: bool = False,
             return_datasamples: bool = False, print_result: bool = False, progress: Optional[bool] = None,
             on_result: Optional[Callable[[dict], None]] = None, vis_kwargs: Optional[dict] = None) -> dict:
        check_batch_size(batch_size)
        progress = self.show_progress if progress is None else progress
        ori = self._inputs_to_list(inputs)  # before the text encoding: a wrong path fails at once
        enc = self.text_encoder_module
        shown = getattr(enc, 'show_progress', False)
        t0 = time.perf_counter()
        try:
            if enc is not None:
                enc.show_progress = progress
            self.set_vocabulary(texts, **vocab_kwargs)
        finally:
            if enc is not None:
                enc.show_progress = shown
        text_s = time.perf_counter() - t0
        names = output_names(ori, self._num_arrays)
        self._num_arrays += sum(not isinstance(i, str) for i in ori)
        vis_dir = osp.join(out_dir, img_out_dir) if out_dir and img_out_dir and not no_save_vis else ''
        pred_dir = osp.join(out_dir, pred_out_dir) if out_dir and pred_out_dir and not no_save_pred else ''
        bar = ProgressBar(len(ori)) if progress and len(ori) > 1 else None
        out = dict(predictions=[], visualization=[], classes=list(self.label_names), skipped=[])
        out.update(self._result_extras())
        self.last_result = out  # grows as the run goes on: what was done is there if it is interrupted
        self.timings = dict(text_s=text_s, forward_s=0.0, images=0)
        for start in range(0, len(ori), batch_size):
            items = []
            for k, inp in enumerate(ori[start:start + batch_size]):
                idx = start + k
                try:
                    items.append((idx, inp, self.pipeline(inp)))
                except Exception as e:  # unreadable image: skip, list, continue
                    name = inp if isinstance(inp, str) else f'array #{idx}'
                    out['skipped'].append(dict(input=name, error=f'{type(e).__name__}: {e}'))
                    warnings.warn(f'skipped {name}: {type(e).__name__}: {e}')
            if items:
                data = self.collate_fn([d for _, _, d in items])
                t1 = time.perf_counter()
                preds = self.forward(data)
                self.timings['forward_s'] += time.perf_counter() - t1
                for (idx, inp, _), pred in zip(items, preds):
                    name = names[idx]
                    ext = osp.splitext(inp)[1] if isinstance(inp, str) and osp.splitext(inp)[1] else '.jpg'
                    vis = None
                    if show or vis_dir or return_vis:
                        vis = self._draw(inp, pred, name, show=show, wait_time=wait_time, draw_pred=draw_pred,
                                         out_file=osp.join(vis_dir, name + ext) if vis_dir else None,
                                         **(vis_kwargs or {}))
                    d = self.pred2dict(pred)
                    d['input'] = inp if isinstance(inp, str) else f'array #{idx}'
                    if pred_dir:
                        self._save_pred(d, pred, pred_dir, name, out_dir)
                    out['predictions'].append(pred if return_datasamples else d)
                    if return_vis:
                        out['visualization'].append(vis)
                    if print_result:
                        print(self._printable(d), flush=True)
                    self.timings['images'] += 1
                    if on_result is not None:
                        on_result(d)
            if bar is not None:
                bar.update(len(ori[start:start + batch_size]))
        if bar is not None:
            print(flush=True)
        return out

    def _result_extras(self) -> dict:
        return {}

    @staticmethod
    def _printable(d: dict) -> dict:
        return d

    def _read_rgb(self, inp) -> np.ndarray:
        if isinstance(inp, str):
            return mmcv.imfrombytes(mmengine.fileio.get(inp), channel_order='rgb')
        return np.ascontiguousarray(inp[:, :, ::-1])  # arrays are BGR as in mmdet / mmseg
