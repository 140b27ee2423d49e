"""Class-agnostic mask id maps: the file format of CorrCLIP's published region masks, painting, resizing.

Format (the one CorrCLIP ships and reads, ``instance_mask_path/<image stem>.npz``):

* one ``.npz`` per image, named after the image's file stem, holding the key ``instance_mask``;
* an integer array (H, W) at the image's **original** size (the size mmseg's ``LoadImageFromFile`` gives, i.e.
  ``ori_shape``), one id per pixel; any integer dtype (SAM2 painting gives int64, EoMT int16 with -1);
* the **smallest id present** stands for the union of the unsegmented pixels (0 when painted by
  :func:`paint_masks`); every other id is one region.

Reading casts to int32 as CorrCLIP does (``.int()``).  Our caches write int32 with ``np.savez_compressed``
(CorrCLIP's writer), so a cache folder is also a valid mask folder and vice versa.
"""
import os
import os.path as osp
import tempfile
from typing import Iterable, Mapping, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['MASK_KEY', 'MASK_PAD_VALUE', 'MaskFileError', 'mask_file_path', 'load_mask_file', 'save_mask_file',
           'paint_masks', 'resize_mask_ids', 'crop_mask_ids']

MASK_KEY = 'instance_mask'
MASK_PAD_VALUE = 10000  # CorrCLIP pads window masks with this id (corrclip_segmentor.py:160)


class MaskFileError(ValueError):
    """A mask file that is missing, unreadable or does not fit its image (the message names the file)."""

    def __init__(self, msg: str, path: str = None):
        super().__init__(msg)
        self.path = path


def mask_file_path(mask_dir: str, img_path: str, suffix: str = '.npz') -> str:
    """``mask_dir/<stem of img_path><suffix>`` (CorrCLIP: ``Path(img_path).stem + '.npz'``)."""
    stem = osp.splitext(osp.basename(img_path))[0]
    return osp.join(mask_dir, stem + suffix)


def load_mask_file(path: str, key: str = MASK_KEY) -> np.ndarray:
    """Read one id map -> (H, W) int32.  Raises :class:`MaskFileError` naming ``path`` on any problem."""
    if not osp.isfile(path):
        hint = '' if osp.isdir(osp.dirname(path) or '.') else f' (the folder {osp.dirname(path)!r} does not exist)'
        raise MaskFileError(f'mask file {path!r} not found{hint}', path)
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile / pickle / IO errors of a damaged or foreign file
        raise MaskFileError(f'mask file {path!r} is unreadable ({type(e).__name__}: {e})', path) from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise MaskFileError(f'mask file {path!r} is not an .npz archive (a single {type(z).__name__})', path)
    with z:
        if key not in z.files:
            raise MaskFileError(f'mask file {path!r} has no key {key!r} (keys: {sorted(z.files)})', path)
        try:
            arr = z[key]
        except Exception as e:
            raise MaskFileError(f'mask file {path!r}: {key!r} is unreadable ({type(e).__name__}: {e})', path) from e
    if arr.ndim != 2 or arr.size == 0:
        raise MaskFileError(f'mask file {path!r}: {key!r} must be a non-empty (H, W) id map, got shape '
                            f'{tuple(arr.shape)}', path)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int32)
    if not np.issubdtype(arr.dtype, np.integer):
        raise MaskFileError(f'mask file {path!r}: {key!r} must hold integer ids, got dtype {arr.dtype}', path)
    info = np.iinfo(np.int32)
    if arr.dtype.itemsize >= 4 and (arr.min() < info.min or arr.max() > info.max):
        raise MaskFileError(f'mask file {path!r}: ids outside the int32 range', path)
    return arr.astype(np.int32, copy=False)


def save_mask_file(path: str, ids, key: str = MASK_KEY) -> None:
    """Write an (H, W) id map as int32 ``.npz`` atomically (a crash never leaves a half-written file)."""
    ids = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f'an id map is (H, W), got shape {ids.shape}')
    d = osp.dirname(path) or '.'
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.tmp_', suffix='.npz')
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez_compressed(f, **{key: ids.astype(np.int32)})
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def paint_masks(anns: Iterable[Mapping], shape: Tuple[int, int]) -> np.ndarray:
    """Automatic-mask-generator output -> (H, W) int32 id map (CorrCLIP corrclip_segmentor.py:334-341).

    ``anns``: dicts with a boolean (H, W) ``segmentation`` and its ``area``.  They are sorted by area ascending
    (stable) and painted in that order with ids 1, 2, ..., so larger masks overwrite smaller ones; pixels no mask
    covers keep 0, the smallest id (the unsegmented union).
    """
    ids = np.zeros(tuple(shape), dtype=np.int32)
    for k, ann in enumerate(sorted(anns, key=lambda a: a['area']), start=1):
        seg = np.asarray(ann['segmentation'])
        if seg.shape != ids.shape:
            raise ValueError(f'mask of shape {seg.shape} for an image of shape {ids.shape} (binary_mask output '
                             'expected)')
        ids[seg.astype(bool)] = k
    return ids


def resize_mask_ids(ids: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(..., H, W) ids -> (..., h, w) int32 by nearest (CorrCLIP corrclip_segmentor.py:194: float, 'nearest')."""
    lead = ids.shape[:-2]
    x = ids.reshape(-1, 1, *ids.shape[-2:]).float()
    out = F.interpolate(x, size=tuple(size), mode='nearest').int()
    return out.reshape(*lead, *out.shape[-2:])


def crop_mask_ids(ids: torch.Tensor, box: Sequence[int], pad: Sequence[int] = (0, 0, 0, 0),
                  pad_value: int = MASK_PAD_VALUE) -> torch.Tensor:
    """Window of a (..., H, W) id map: ``box`` = (y1, y2, x1, x2), then padded (l, r, t, b) with ``pad_value``.

    Same as CorrCLIP's per-window masks (corrclip_segmentor.py:152, :156-160; the window padding of the image is
    symmetric zero padding to a multiple of 56 there).
    """
    y1, y2, x1, x2 = box
    out = ids[..., y1:y2, x1:x2]
    if any(pad):
        out = F.pad(out, tuple(pad), value=pad_value)
    return out
