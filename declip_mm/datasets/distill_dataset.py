"""Image-only dataset for DeCLIP distillation, and an epoch-aware sampler.

``DistillImageDataset`` lists images from a COCO-style json (``images[*].file_name``; annotations unused) or from a
plain folder. Unreadable / corrupt images are skipped with a warning and counted (the next readable image is used
instead, deterministically), so a bad file never crashes a run.

``DistillSampler`` is mmengine's ``DefaultSampler`` that yields ``epoch * len(dataset) + index``; the dataset decodes
``(epoch, index)`` from it so the crop draw is a function of ``(seed, epoch, index)`` whatever the worker count or
persistence, and it can skip the already-seen part of an epoch on ``--resume`` (see ``DistillResumeHook``).
"""
import json
import os
import os.path as osp
import warnings
from typing import Iterator, List, Optional

import numpy as np
from mmengine.dataset import BaseDataset, DefaultSampler
from mmengine.logging import print_log

from declip_mm.registry import DATA_SAMPLERS, DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); raises ``IOError`` naming the file when unreadable/corrupt."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert('RGB'))
    except Exception as e:  # noqa: BLE001 - any decoder error means a corrupt file
        raise IOError(f'cannot read image {path!r}: {type(e).__name__}: {e}') from e
    if arr.ndim != 3 or min(arr.shape[:2]) < 1:
        raise IOError(f'cannot read image {path!r}: empty image of shape {arr.shape}')
    return arr


@DATASETS.register_module()
class DistillImageDataset(BaseDataset):
    """Plain images for distillation.

    Args:
        ann_file: COCO-style json (only ``images`` is read) or ``''`` to scan ``data_prefix['img']`` for images.
        synthetic: kwargs of ``generate_synthetic_dataset`` (e.g. ``dict(num_images=100)``): when ``ann_file``
            does not exist, generate the tiny synthetic set into its folder first (the embedded default).
        data_root / data_prefix: as in mmengine (``data_prefix=dict(img='train2017/')``).
        pipeline: transforms; the last one is normally ``DeCLIPGridCrops``.
        max_refetch: how many following images to try when one is unreadable.
    Each item is the pipeline output with ``results`` keys ``img`` (RGB uint8), ``img_path``, ``sample_idx`` and
    ``epoch``. ``num_skipped`` counts unreadable images met by this process (``skipped_paths`` lists them).
    """

    METAINFO = dict(classes=())

    def __init__(self, *args, max_refetch: int = 100, synthetic: Optional[dict] = None, **kwargs):
        self.num_skipped = 0
        self.skipped_paths: List[str] = []
        self.synthetic = synthetic
        super().__init__(*args, max_refetch=max_refetch, **kwargs)

    def load_data_list(self) -> List[dict]:
        img_root = self.data_prefix.get('img', '') or self.data_root or ''
        if self.synthetic is not None and self.ann_file and not osp.isfile(self.ann_file):
            from .synthetic_images import generate_synthetic_dataset
            generate_synthetic_dataset(osp.dirname(self.ann_file) or '.', **self.synthetic)
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'DistillImageDataset: annotation file {self.ann_file!r} not found')
            with open(self.ann_file) as f:
                images = json.load(f).get('images')
            if not images:
                raise ValueError(f"DistillImageDataset: {self.ann_file!r} has no 'images' list")
            files = [im['file_name'] for im in images]
            paths = [osp.join(img_root, p) for p in files]
        else:
            if not osp.isdir(img_root):
                raise FileNotFoundError(f'DistillImageDataset: image folder {img_root!r} not found')
            paths = []
            for root, _, names in os.walk(img_root):
                paths += [osp.join(root, n) for n in names if n.lower().endswith(IMG_EXTENSIONS)]
            paths.sort()
        if not paths:
            raise ValueError(f'DistillImageDataset: no images found (ann_file={self.ann_file!r}, folder={img_root!r})')
        return [dict(img_path=p) for p in paths]

    def _split(self, idx: int):
        n = len(self)
        return divmod(int(idx), n) if idx >= n else (0, int(idx))

    def prepare_sample(self, idx: int, epoch: int = 0) -> Optional[dict]:
        info = self.get_data_info(idx)
        try:
            img = read_rgb(info['img_path'])
        except IOError as e:
            self.num_skipped += 1
            self.skipped_paths.append(info['img_path'])
            msg = f'DistillImageDataset: skipping unreadable image ({self.num_skipped} so far): {e}'
            warnings.warn(msg)
            print_log(msg, logger='current', level=30)
            return None
        results = dict(img=img, img_path=info['img_path'], sample_idx=idx, epoch=epoch,
                       ori_shape=img.shape[:2], num_skipped=0)
        return self.pipeline(results)

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        epoch, i = self._split(idx)
        skipped = 0
        for k in range(self.max_refetch + 1):
            j = (i + k) % len(self)
            data = self.prepare_sample(j, epoch)
            if data is not None:
                if isinstance(data.get('data_samples'), dict):
                    data['data_samples']['num_skipped'] = skipped
                return data
            skipped += 1
        raise RuntimeError(f'DistillImageDataset: {self.max_refetch + 1} consecutive unreadable images starting at '
                           f"{self.get_data_info(i)['img_path']!r}; check the dataset")


@DATA_SAMPLERS.register_module()
class DistillSampler(DefaultSampler):
    """``DefaultSampler`` yielding ``epoch * len(dataset) + index`` (decoded by ``DistillImageDataset``).

    ``skip(n)`` drops the first ``n`` indices of this rank at the next iteration (resume inside an epoch).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skip = 0

    def skip(self, n: int) -> None:
        self._skip = max(0, int(n))

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        offset = self.epoch * n
        skip, self._skip = self._skip, 0
        for k, i in enumerate(super().__iter__()):
            if k < skip:
                continue
            yield offset + int(i)

    def __len__(self) -> int:
        return self.num_samples


def _ann_mask(seg, h: int, w: int) -> np.ndarray:
    """COCO polygon / RLE segmentation -> (h, w) bool."""
    from pycocotools import mask as mask_utils
    if isinstance(seg, list):
        rles = mask_utils.frPyObjects(seg, h, w)
        rle = mask_utils.merge(rles)
    elif isinstance(seg.get('counts'), list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = dict(seg)
        if isinstance(rle['counts'], str):
            rle['counts'] = rle['counts'].encode('ascii')
    return mask_utils.decode(rle).astype(bool)


@DATASETS.register_module()
class RegionClsDataset(BaseDataset):
    """Open-vocabulary region classification data (method doc section 7): COCO-panoptic val2017 or any COCO-style
    instances json with segmentations (e.g. the generated tiny set).

    Args:
        ann_file: ``panoptic_val2017.json`` (with ``seg_prefix`` = the panoptic PNG folder) or an instances json.
        seg_prefix: folder of the panoptic PNGs (panoptic format only).
        max_regions: at most this many segments per image (official 100).
        min_box / max_box: segments whose box area is < min_box^2 or > max_box^2 are skipped (official 8 / 1024).
    Each sample gets ``regions``: list of dicts ``bbox`` [x1, y1, x2, y2] (things: the annotation box; stuff: the
    mask extent), ``mask`` (H, W) bool, ``label`` (index into ``metainfo['classes']``), ``isthing``.
    """

    METAINFO = dict(classes=(), thing_flags=())

    def __init__(self, *args, seg_prefix: str = '', max_regions: int = 100, min_box: float = 8,
                 max_box: float = 1024, synthetic: Optional[dict] = None, **kwargs):
        self.seg_prefix = seg_prefix
        self.max_regions = max_regions
        self.min_box, self.max_box = min_box, max_box
        self.synthetic = synthetic
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.synthetic is not None and not osp.isfile(self.ann_file):
            from .synthetic_images import generate_synthetic_dataset
            generate_synthetic_dataset(osp.dirname(self.ann_file) or '.', **self.synthetic)
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'RegionClsDataset: annotation file {self.ann_file!r} not found')
        with open(self.ann_file) as f:
            coco = json.load(f)
        cats = sorted(coco['categories'], key=lambda c: c['id'])
        if not cats:
            raise ValueError(f'RegionClsDataset: {self.ann_file!r} has no categories (class names are required)')
        cat2label = {c['id']: i for i, c in enumerate(cats)}
        self._metainfo['classes'] = tuple(c['name'] for c in cats)
        self._metainfo['thing_flags'] = tuple(bool(c.get('isthing', 1)) for c in cats)
        img_root = self.data_prefix.get('img', '') or self.data_root or ''
        images = {im['id']: im for im in coco['images']}
        panoptic = bool(coco.get('annotations')) and 'segments_info' in coco['annotations'][0]
        data = []
        if panoptic:
            seg_root = self.seg_prefix if osp.isabs(self.seg_prefix) else osp.join(self.data_root or '',
                                                                                   self.seg_prefix)
            for ann in coco['annotations']:
                im = images[ann['image_id']]
                segs = [dict(id=s['id'], label=cat2label[s['category_id']], bbox=s['bbox'],
                             isthing=self._metainfo['thing_flags'][cat2label[s['category_id']]])
                        for s in ann['segments_info'] if not s.get('iscrowd', 0)]
                data.append(dict(img_path=osp.join(img_root, im['file_name']),
                                 seg_path=osp.join(seg_root, ann['file_name']), segments=segs,
                                 height=im['height'], width=im['width']))
        else:
            per_img = {}
            for a in coco.get('annotations', []):
                if a.get('iscrowd', 0):
                    continue
                per_img.setdefault(a['image_id'], []).append(dict(
                    label=cat2label[a['category_id']], bbox=a['bbox'], segmentation=a['segmentation'],
                    isthing=self._metainfo['thing_flags'][cat2label[a['category_id']]]))
            for iid, im in images.items():
                if iid in per_img:
                    data.append(dict(img_path=osp.join(img_root, im['file_name']), segments=per_img[iid],
                                     height=im['height'], width=im['width']))
        return data

    def _regions(self, info: dict, h: int, w: int) -> List[dict]:
        if 'seg_path' in info:
            pan = read_rgb(info['seg_path']).astype(np.int64)
            ids = pan[..., 0] + 256 * pan[..., 1] + 256 * 256 * pan[..., 2]
        regions = []
        for s in info['segments']:
            mask = (ids == s['id']) if 'seg_path' in info else _ann_mask(s['segmentation'], h, w)
            if not mask.any():
                continue
            if s['isthing']:
                x, y, bw, bh = s['bbox']
                box = [x, y, x + bw, y + bh]
            else:  # stuff: the mask extent
                ys, xs = np.nonzero(mask)
                box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            area = (box[2] - box[0]) * (box[3] - box[1])
            if area < self.min_box ** 2 or area > self.max_box ** 2:
                continue
            regions.append(dict(bbox=box, mask=mask, label=s['label'], isthing=s['isthing']))
            if len(regions) >= self.max_regions:
                break
        return regions

    def prepare_data(self, idx: int):
        info = self.get_data_info(idx)
        img = read_rgb(info['img_path'])
        h, w = img.shape[:2]
        results = dict(img=img, img_path=info['img_path'], sample_idx=idx, regions=self._regions(info, h, w),
                       classes=self._metainfo['classes'])
        return self.pipeline(results)
