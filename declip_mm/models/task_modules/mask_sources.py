"""Class-agnostic mask sources: where the per-image region id maps of the mask vote (and CorrCLIP) come from.

A source maps an image file to an (H, W) int32 id map at the image's original size (format: ``mask_io``):

* :class:`MaskFileSource` reads ``mask_dir/<image stem>.npz`` (CorrCLIP's published region masks, or a cache
  written by a generator source);
* :class:`SAM2MaskSource` runs SAM 2's automatic mask generator (``sam2`` package) with CorrCLIP's settings
  (8x8 points, predicted-IoU 0.4, stability 0.4, one mask per point), from a local checkpoint;
* :class:`SAMMaskSource` does the same with SAM (``segment-anything`` package);
* :class:`ColorMaskSource` groups pixels by quantised colour (no model; deterministic, for tests and demos on the
  flat-coloured synthetic scenes).

Generator sources paint the masks with :func:`paint_masks` (area ascending, larger masks overwrite smaller ones,
0 = unsegmented) and, given ``cache_dir``, read an existing ``cache_dir/<stem>.npz`` instead of generating and
write each new map there (atomically), so a cache folder is itself a valid ``MaskFileSource`` folder.  Pre-generate
a dataset's masks with ``tools/gen_masks.py``.

Sources are TASK_UTILS (as mmdet's assigners / coders): helpers a model builds, not layers.  Weights are read with
``torch.load(weights_only=True)``; nothing is downloaded.
"""
import contextlib
import os.path as osp
from typing import Optional

import numpy as np
import torch

from declip_mm.registry import TASK_UTILS
from .mask_io import MASK_KEY, load_mask_file, mask_file_path, paint_masks, save_mask_file

__all__ = ['MaskFileSource', 'ColorMaskSource', 'GeneratedMaskSource', 'SAM2MaskSource', 'SAMMaskSource',
           'build_mask_source',
           'read_rgb']

try:  # also visible to configs whose default scope is mmseg
    from mmseg.registry import TASK_UTILS as SEG_TASK_UTILS
except ImportError:  # pragma: no cover
    SEG_TASK_UTILS = None


def _register(cls):
    TASK_UTILS.register_module(module=cls)
    if SEG_TASK_UTILS is not None:
        SEG_TASK_UTILS.register_module(module=cls)
    return cls


def build_mask_source(cfg):
    """A source object, or a config dict looked up in declip_mm's TASK_UTILS (then mmseg's)."""
    if cfg is None or not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    cls = TASK_UTILS.module_dict.get(cfg.get('type'))
    if cls is None:
        return TASK_UTILS.build(cfg)
    cfg.pop('type')
    return cls(**cfg)


def read_rgb(img_path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, read as CorrCLIP does (PIL ``convert('RGB')``, corrclip_segmentor.py:330-331)."""
    from PIL import Image
    with Image.open(img_path) as im:
        return np.array(im.convert('RGB'))


@_register
class MaskFileSource:
    """Id maps from ``mask_dir/<image stem><suffix>`` (key ``instance_mask``); see ``mask_io`` for the format.

    Args:
        mask_dir: folder of the ``.npz`` files (e.g. one dataset folder of CorrCLIP's ``region_masks``).
        suffix / key: file suffix and array key.
    """

    def __init__(self, mask_dir: str, suffix: str = '.npz', key: str = MASK_KEY):
        self.mask_dir, self.suffix, self.key = mask_dir, suffix, key

    def path_for(self, img_path: str) -> str:
        return mask_file_path(self.mask_dir, img_path, self.suffix)

    def __call__(self, img_path: str) -> np.ndarray:
        """(H, W) int32 ids; :class:`MaskFileError` naming the file if it is missing or malformed."""
        return load_mask_file(self.path_for(img_path), self.key)

    def __repr__(self):
        return f'{type(self).__name__}(mask_dir={self.mask_dir!r})'


@_register
class ColorMaskSource:
    """Id maps from quantised colours: every RGB channel in ``levels`` equal bins, one id per colour bin present
    (1, 2, ... in the order of the bin index); bins covering fewer than ``min_area`` pixels -> 0 (unsegmented).

    Deterministic and model-free: CorrCLIP's pipeline on the synthetic scenes (tests, the tiny config).
    """

    def __init__(self, levels: int = 4, min_area: int = 16):
        if levels < 1:
            raise ValueError(f'levels must be >= 1, got {levels}')
        self.levels, self.min_area = int(levels), int(min_area)

    def ids_of(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) int32 ids."""
        q = (rgb.astype(np.int64) * self.levels) // 256
        code = (q[..., 0] * self.levels + q[..., 1]) * self.levels + q[..., 2]
        values, inv, counts = np.unique(code, return_inverse=True, return_counts=True)
        keep = counts >= self.min_area
        new = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
        return new[inv.reshape(code.shape)]

    def __call__(self, img_path: str) -> np.ndarray:
        return self.ids_of(read_rgb(img_path))

    def __repr__(self):
        return f'{type(self).__name__}(levels={self.levels}, min_area={self.min_area})'


class GeneratedMaskSource:
    """Base of the generator sources: cache look-up, image reading, painting, cache writing.

    Subclasses implement :meth:`build_generator` (an object with ``generate(rgb_uint8_hwc) -> list of dicts``
    holding ``segmentation`` (bool (H, W)) and ``area``, the interface of SAM / SAM 2's automatic mask generators).
    The generator is built on first use, so a config builds without the package or the checkpoint.
    """

    def __init__(self, cache_dir: Optional[str] = None, device: Optional[str] = None, half: bool = True):
        self.cache_dir = cache_dir
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.half = half
        self._generator = None

    # ------------------------------------------------------------------------------------------------ subclass API
    def build_generator(self):
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------ API
    @property
    def generator(self):
        if self._generator is None:
            self._generator = self.build_generator()
        return self._generator

    def path_for(self, img_path: str) -> Optional[str]:
        return mask_file_path(self.cache_dir, img_path) if self.cache_dir else None

    def is_cached(self, img_path: str) -> bool:
        p = self.path_for(img_path)
        return p is not None and osp.isfile(p)

    def generate(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) int32 painted id map (no cache)."""
        use_amp = self.half and str(self.device).startswith('cuda')
        amp = torch.autocast('cuda', dtype=torch.float16) if use_amp else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            anns = self.generator.generate(rgb)
        return paint_masks(anns, rgb.shape[:2])

    def __call__(self, img_path: str) -> np.ndarray:
        """Cached map if there is one, else generate it (and write it to the cache)."""
        path = self.path_for(img_path)
        if path is not None and osp.isfile(path):
            return load_mask_file(path)
        ids = self.generate(read_rgb(img_path))
        if path is not None:
            save_mask_file(path, ids)
        return ids

    def __repr__(self):
        return f'{type(self).__name__}(cache_dir={self.cache_dir!r}, device={self.device!r})'


def _missing(pkg: str, pip_name: str, what: str) -> ImportError:
    return ImportError(f'{what} needs the optional package {pkg!r}: pip install {pip_name} (or pre-generate the '
                       'masks elsewhere and use MaskFileSource)')


def _check_checkpoint(path: Optional[str], what: str) -> str:
    if not path:
        raise ValueError(f'{what}: give checkpoint=<local weight file> (nothing is downloaded)')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what}: checkpoint {path!r} not found')
    return path


@_register
class SAM2MaskSource(GeneratedMaskSource):
    """SAM 2 automatic masks with CorrCLIP's settings (corrclip_segmentor.py:263-272).

    Args:
        checkpoint: local SAM 2 weight file (``{'model': state_dict}``, e.g. ``sam2_hiera_large.pt``).
        model_cfg: SAM 2 hydra config name (CorrCLIP: ``sam2_hiera_l.yaml``).
        points_per_side / pred_iou_thresh / stability_score_thresh / multimask_output: CorrCLIP's 8 / 0.4 / 0.4 /
            False; ``generator_kwargs`` go to ``SAM2AutomaticMaskGenerator`` as well.
        cache_dir: read / write ``<stem>.npz`` id maps here.
        device: default cuda if available.  half: fp16 model + autocast on CUDA (CorrCLIP; ignored on CPU).
    """

    def __init__(self, checkpoint: Optional[str] = None, model_cfg: str = 'sam2_hiera_l.yaml',
                 points_per_side: int = 8, pred_iou_thresh: float = 0.4, stability_score_thresh: float = 0.4,
                 multimask_output: bool = False, generator_kwargs: Optional[dict] = None,
                 cache_dir: Optional[str] = None, device: Optional[str] = None, half: bool = True):
        super().__init__(cache_dir=cache_dir, device=device, half=half)
        self.checkpoint, self.model_cfg = checkpoint, model_cfg
        self.generator_kwargs = dict(points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
                                     stability_score_thresh=stability_score_thresh,
                                     multimask_output=multimask_output, **(generator_kwargs or {}))

    def build_generator(self):
        try:
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
            from sam2.build_sam import build_sam2
        except ImportError as e:
            raise _missing('sam2', 'sam2', 'SAM2MaskSource') from e
        ckpt = _check_checkpoint(self.checkpoint, 'SAM2MaskSource')
        # built without weights, then loaded here with weights_only=True (sam2's own loader is not relied upon)
        model = build_sam2(self.model_cfg, None, device='cpu', apply_postprocessing=False)
        obj = torch.load(ckpt, map_location='cpu', weights_only=True)
        sd = obj['model'] if isinstance(obj, dict) and 'model' in obj else obj
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise RuntimeError(f'SAM2MaskSource: {ckpt!r} does not fit {self.model_cfg!r} '
                               f'(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})')
        model = model.to(self.device).eval()
        if self.half and str(self.device).startswith('cuda'):
            model = model.half()
        return SAM2AutomaticMaskGenerator(model=model, **self.generator_kwargs)


@_register
class SAMMaskSource(GeneratedMaskSource):
    """SAM (``segment-anything``) automatic masks, same painting and settings as :class:`SAM2MaskSource`.

    Args:
        checkpoint: local SAM weight file (a plain state dict, e.g. ``sam_vit_h_4b8939.pth``).
        model_type: ``vit_b`` / ``vit_l`` / ``vit_h``.
        model: an already built ``Sam`` (Python use; overrides ``model_type`` / ``checkpoint``).
        points_per_side / pred_iou_thresh / stability_score_thresh: 8 / 0.4 / 0.4 (SAM's generator gives one mask
            per point after its own filtering; it has no ``multimask_output`` switch).
        half: fp16 model + autocast on CUDA (default off here).  Other args: see :class:`SAM2MaskSource`.
    """

    def __init__(self, checkpoint: Optional[str] = None, model_type: str = 'vit_h', model=None,
                 points_per_side: int = 8, pred_iou_thresh: float = 0.4, stability_score_thresh: float = 0.4,
                 generator_kwargs: Optional[dict] = None, cache_dir: Optional[str] = None,
                 device: Optional[str] = None, half: bool = False):
        super().__init__(cache_dir=cache_dir, device=device, half=half)
        self.checkpoint, self.model_type, self.model = checkpoint, model_type, model
        self.generator_kwargs = dict(points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
                                     stability_score_thresh=stability_score_thresh, **(generator_kwargs or {}))

    def build_generator(self):
        try:
            from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
        except ImportError as e:
            raise _missing('segment_anything', 'segment-anything', 'SAMMaskSource') from e
        model = self.model
        if model is None:
            if self.model_type not in sam_model_registry:
                raise ValueError(f'SAMMaskSource: model_type {self.model_type!r} not in {sorted(sam_model_registry)}')
            ckpt = _check_checkpoint(self.checkpoint, 'SAMMaskSource')
            model = sam_model_registry[self.model_type](checkpoint=None)  # its own loader unpickles fully
            sd = torch.load(ckpt, map_location='cpu', weights_only=True)
            missing, unexpected = model.load_state_dict(sd, strict=False)
            if missing or unexpected:
                raise RuntimeError(f'SAMMaskSource: {ckpt!r} does not fit {self.model_type!r} '
                                   f'(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})')
        model = model.to(self.device).eval()
        if self.half and str(self.device).startswith('cuda'):
            model = model.half()
        return SamAutomaticMaskGenerator(model, **self.generator_kwargs)
