"""The DeCLIP distillation transform: one image -> student image, teacher crops and VFM image (method doc section 3).

* student: ``ResizeLongest(det)`` (antialiased bicubic, as PIL / torchvision resize a PIL image) then black padding
  right/bottom to ``det x det``;
* crops: an exact ``m x n`` tiling of the original image, ``(m, n)`` drawn from the official 24 pairs (or the paper's
  uniform ``[1, 6]^2``, or a fixed list), tiles shuffled, at most ``max_crops`` kept, each tile (edges rounded to
  whole pixels) letterboxed (longest side = ``crop_size``, centred black padding); boxes: the unrounded grid cells
  normalised to the padded canvas, ``box_px / max(H, W)``, padded to ``max_crops`` rows with a validity flag in
  column 4 (as the original: RoI boxes from the exact grid, crops from PIL's rounded crop);
* VFM: the same letterbox as the student at ``(det // student_patch) * vfm_patch`` so that token (i, j) covers the
  same region in both models.

The crop sampling is a pure function of ``(seed, epoch, sample_idx)`` so resume and worker count cannot change it.
Images stay uint8 here; normalisation is the data preprocessor's job.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from declip_mm.registry import TRANSFORMS


def official_grid_pairs() -> List[Tuple[int, int]]:
    """The official 24 (rows m, cols n) pairs: m in 1..6, n in [ceil(m / 2), min(2m, 6)]."""
    return [(m, n) for m in range(1, 7) for n in range(math.ceil(m / 2), min(2 * m, 6) + 1)]


def paper_grid_pairs() -> List[Tuple[int, int]]:
    """The paper's setting: m, n uniform in [1, 6] (36 pairs)."""
    return [(m, n) for m in range(1, 7) for n in range(1, 7)]


def resize_longest(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 so its longest side is ``size`` (aspect kept).

    Same as the original pipeline, which resizes a PIL image with torchvision: the new sides are
    ``round(side * size / max(H, W))`` (Python rounding, half to even; at least 1 px here) and the resampling is PIL's
    antialiased bicubic (``mmcv.imresize(..., backend='pillow')`` is exactly that call).
    """
    h, w = img.shape[:2]
    scale = size / float(max(h, w))
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) == (h, w):
        return img.copy()
    # not mmcv.imrescale: it rounds the new size half up (int(x + 0.5)), the original rounds half to even
    return mmcv.imresize(img, (nw, nh), interpolation='bicubic', backend='pillow')


def letterbox(img: np.ndarray, size: int, center: bool = False) -> Tuple[np.ndarray, Tuple[int, int, int, int]]:
    """Longest side -> ``size`` then black padding to ``size x size``.

    Returns the padded (size, size, 3) uint8 image and the content rectangle ``(x0, y0, w, h)`` inside it; padding
    is right/bottom (``center=False``, the student and VFM images: the original ``ResizeLongest``) or centred with
    the odd pixel right/bottom (the teacher crops: the original ``ResizeMaxSize``).
    """
    r = resize_longest(img, size)
    h, w = r.shape[:2]
    x0, y0 = ((size - w) // 2, (size - h) // 2) if center else (0, 0)
    out = mmcv.impad(r, padding=(x0, y0, size - w - x0, size - h - y0), pad_val=0)
    return out, (x0, y0, w, h)


def grid_tiles(h: int, w: int, m: int, n: int, exact: bool = False) -> np.ndarray:
    """m (rows) x n (cols) tiling of an h x w image -> (m*n, 4) ``[x1, y1, x2, y2]`` pixel boxes, row-major.

    ``exact=False``: int boxes, the edges ``k * side / parts`` rounded half to even (what PIL's ``crop`` does with the
    original's float boxes), an exact partition of the pixels; ``exact=True``: the float edges themselves (the
    original's RoI boxes).
    """
    ys, xs = np.linspace(0, h, m + 1), np.linspace(0, w, n + 1)
    if not exact:
        ys, xs = np.round(ys).astype(np.int64), np.round(xs).astype(np.int64)
    boxes = [[xs[j], ys[i], xs[j + 1], ys[i + 1]] for i in range(m) for j in range(n)]
    return np.asarray(boxes, dtype=np.float64 if exact else np.int64).reshape(-1, 4)


@TRANSFORMS.register_module()
class DeCLIPGridCrops(BaseTransform):
    """Make the three DeCLIP inputs from ``results['img']`` (RGB uint8 (H, W, 3)).

    Args:
        det_size: student canvas side (560 official scripts, 1024 paper).
        student_patch: student patch size (16 for B/16, 14 for L/14).
        vfm_patch: VFM patch size (14 DINOv2, 16 SAM / DINO-B/16 / DINOv3, 8 DINO-B/8); ``None`` -> no VFM image.
        crop_size: teacher input size (224 B/16, 336 L/14-336).
        max_crops: crops kept per image (and rows of the padded box tensor).
        grid: ``'official'`` (24 pairs), ``'paper'`` (m, n in [1, 6]) or an explicit list of (m, n) pairs.
        seed: crop-sampling seed; the draw for a sample is a function of ``(seed, results['epoch'],
            results['sample_idx'])`` only.

    Returns the packed ``dict(inputs=dict(student=(3, det, det) uint8, crops=(max_crops, 3, S, S) uint8,
    vfm=(3, v, v) uint8, boxes=(max_crops, 5) float32 [x1, y1, x2, y2, valid] normalised to the padded canvas),
    data_samples=dict(img_path, sample_idx, epoch, ori_shape, grid, num_crops))``.
    """

    def __init__(self, det_size: int = 560, student_patch: int = 16, vfm_patch: Optional[int] = 14,
                 crop_size: int = 224, max_crops: int = 20,
                 grid: Union[str, Sequence[Sequence[int]]] = 'official', seed: int = 0):
        if det_size % student_patch:
            raise ValueError(f'DeCLIPGridCrops: det_size {det_size} must be a multiple of the student patch '
                             f'{student_patch}')
        self.det_size = det_size
        self.student_patch = student_patch
        self.vfm_patch = vfm_patch
        self.vfm_size = None if vfm_patch is None else det_size // student_patch * vfm_patch
        self.crop_size = crop_size
        self.max_crops = max_crops
        if grid == 'official':
            self.pairs = official_grid_pairs()
        elif grid == 'paper':
            self.pairs = paper_grid_pairs()
        elif isinstance(grid, str):
            raise ValueError(f"DeCLIPGridCrops: grid must be 'official', 'paper' or a list of (m, n), got {grid!r}")
        else:
            self.pairs = [tuple(int(v) for v in p) for p in grid]
            if not self.pairs or any(len(p) != 2 or min(p) < 1 for p in self.pairs):
                raise ValueError(f'DeCLIPGridCrops: bad grid pairs {grid!r}')
        self.seed = seed

    def rng(self, epoch: int, sample_idx: int) -> np.random.Generator:
        return np.random.default_rng([int(self.seed), int(epoch), int(sample_idx)])

    def sample_boxes(self, h: int, w: int, epoch: int, sample_idx: int,
                     exact: bool = False) -> Tuple[np.ndarray, Tuple[int, int]]:
        """Draw the grid and the kept tiles -> ((k, 4) pixel boxes, (m, n)); int crop boxes, or with ``exact`` the
        unrounded grid boxes of the same tiles (see ``grid_tiles``)."""
        rng = self.rng(epoch, sample_idx)
        m, n = self.pairs[int(rng.integers(len(self.pairs)))]
        tiles = grid_tiles(h, w, m, n, exact=exact)
        order = rng.permutation(len(tiles))[:self.max_crops]
        return tiles[order], (m, n)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img is None or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
            raise ValueError(f"DeCLIPGridCrops: expected an RGB (H, W, 3) image, got "
                             f"{None if img is None else img.shape} for {results.get('img_path')}")
        h, w = img.shape[:2]
        epoch = int(results.get('epoch', 0))
        idx = int(results.get('sample_idx', 0))
        student, _ = letterbox(img, self.det_size)
        tiles, mn = self.sample_boxes(h, w, epoch, idx)
        cells, _ = self.sample_boxes(h, w, epoch, idx, exact=True)  # the same tiles, unrounded
        s = self.crop_size
        crops = np.zeros((self.max_crops, s, s, 3), dtype=np.uint8)
        boxes = np.zeros((self.max_crops, 5), dtype=np.float32)
        side = float(max(h, w))
        for k, (x1, y1, x2, y2) in enumerate(tiles):
            crops[k], _ = letterbox(img[y1:y2, x1:x2], s, center=True)
            boxes[k, :4] = cells[k] / side  # as the original: the RoI box is the exact grid, the crop is rounded
            boxes[k, 4] = 1.0
        inputs = dict(
            student=torch.from_numpy(student).permute(2, 0, 1).contiguous(),
            crops=torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous(),
            boxes=torch.from_numpy(boxes))
        if self.vfm_size is not None:
            vfm, _ = letterbox(img, self.vfm_size)
            inputs['vfm'] = torch.from_numpy(vfm).permute(2, 0, 1).contiguous()
        data_samples = dict(img_path=str(results.get('img_path', '')), sample_idx=idx, epoch=epoch,
                            ori_shape=(h, w), grid=mn, num_crops=len(tiles))
        return dict(inputs=inputs, data_samples=data_samples)  # packed: only what the model consumes

    def __repr__(self):
        return (f'{self.__class__.__name__}(det_size={self.det_size}, vfm_size={self.vfm_size}, '
                f'crop_size={self.crop_size}, max_crops={self.max_crops}, pairs={len(self.pairs)}, seed={self.seed})')


def expand_box(box, scale: float, h: int, w: int):
    """Scale an ``[x1, y1, x2, y2]`` box about its centre and clip it to the image (integer pixels, >= 1 px)."""
    x1, y1, x2, y2 = [float(v) for v in box]
    cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * scale, (y2 - y1) * scale
    nx1, ny1 = int(max(0, np.floor(cx - bw / 2))), int(max(0, np.floor(cy - bh / 2)))
    nx2, ny2 = int(min(w, np.ceil(cx + bw / 2))), int(min(h, np.ceil(cy + bh / 2)))
    return nx1, ny1, max(nx2, nx1 + 1), max(ny2, ny1 + 1)


@TRANSFORMS.register_module()
class DeCLIPRegionInputs(BaseTransform):
    """Inputs of the region-classification evaluation (method doc section 7).

    From ``results['img']`` and ``results['regions']`` (list of dicts with ``bbox`` [x1, y1, x2, y2] px, ``mask``
    (H, W) bool, ``label``, ``isthing``) builds:
    ``inputs = dict(student=(3, det, det) uint8 letterbox, crops=(M, 3, S, S) uint8)`` (teacher crops: thing boxes
    expanded ``thing_crop_scale`` x, letterboxed and centred) and ``data_samples``, a ``BaseDataElement`` with
    ``boxes`` (M, 4) normalised to the padded canvas, ``masks`` (M, G, G) bool (letterbox-resized to the token grid:
    bicubic then > 0), ``labels`` (M,), ``isthing`` (M,) and the metainfo ``classes``.
    """

    def __init__(self, det_size: int = 560, student_patch: int = 16, crop_size: int = 224,
                 thing_crop_scale: float = 1.5, with_crops: bool = True):
        self.det_size = det_size
        self.grid = det_size // student_patch
        self.crop_size = crop_size
        self.thing_crop_scale = thing_crop_scale
        self.with_crops = with_crops

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        side = float(max(h, w))
        student, _ = letterbox(img, self.det_size)
        regions = results.get('regions', [])
        g = self.grid
        gh, gw = max(1, int(round(h * g / side))), max(1, int(round(w * g / side)))
        m = len(regions)
        boxes = np.zeros((m, 4), np.float32)
        masks = np.zeros((m, g, g), bool)
        crops = np.zeros((m, self.crop_size, self.crop_size, 3), np.uint8)
        for k, r in enumerate(regions):
            boxes[k] = np.asarray(r['bbox'], np.float32) / side
            small = cv2.resize(r['mask'].astype(np.float32), (gw, gh), interpolation=cv2.INTER_CUBIC)
            masks[k, :gh, :gw] = small > 0
            if self.with_crops:
                scale = self.thing_crop_scale if r['isthing'] else 1.0
                x1, y1, x2, y2 = expand_box(r['bbox'], scale, h, w)
                crops[k], _ = letterbox(img[y1:y2, x1:x2], self.crop_size, center=True)
        inputs = dict(student=torch.from_numpy(student).permute(2, 0, 1).contiguous())
        if self.with_crops:
            inputs['crops'] = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()
        from mmengine.structures import BaseDataElement
        sample = BaseDataElement(
            metainfo=dict(img_path=str(results.get('img_path', '')), classes=tuple(results.get('classes', ())),
                          ori_shape=(h, w)),
            boxes=torch.from_numpy(boxes), masks=torch.from_numpy(masks),
            labels=torch.tensor([r['label'] for r in regions], dtype=torch.long),
            isthing=torch.tensor([bool(r['isthing']) for r in regions], dtype=torch.bool))
        return dict(inputs=inputs, data_samples=sample)
