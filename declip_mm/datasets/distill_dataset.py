"""Image-only dataset for DeCLIP distillation, and an epoch-aware sampler.

``DistillImageDataset`` lists images from a COCO-style json (``images[*].file_name``; annotations unused) or from a
plain folder, read through mmengine's file I/O (``backend_args`` selects the storage backend). Unreadable / corrupt
images and images with a side under ``min_size`` (10 px, as the original) are skipped with a warning; the next
readable image is used instead (deterministically) and each sample reports the files it skipped
(``data_samples['skipped']``), so the distiller can count them once per file and epoch over all ranks.

``DistillSampler`` is mmengine's ``DefaultSampler`` that yields ``epoch * len(dataset) + index``; the dataset decodes
``(epoch, index)`` from it so the crop draw is a function of ``(seed, epoch, index)`` whatever the worker count or
persistence, and it can skip the already-seen part of an epoch on ``--resume`` (see ``DistillResumeHook``).
"""
import os.path as osp
import warnings
from typing import Iterator, List, Optional

import mmcv
import numpy as np
from mmengine import fileio
from mmengine.dataset import BaseDataset, DefaultSampler
from mmengine.logging import print_log

from declip_mm.registry import DATA_SAMPLERS, DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
SKIP_SEP = '\n'  # separator of the skipped paths of one sample (a string collates under default_collate)


def read_rgb(path: str, backend_args: Optional[dict] = None) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3) through mmengine file I/O; ``IOError`` naming the file when
    it is missing, unreadable or corrupt.

    Decoded by Pillow without applying the EXIF orientation, then converted to RGB, like the original pipeline
    (``PIL.Image.open(...).convert('RGB')``; mmcv's ``'color'`` flag would rotate EXIF-tagged photos).
    """
    try:
        content = fileio.get(path, backend_args=backend_args)
        arr = mmcv.imfrombytes(content, flag='color_ignore_orientation', channel_order='rgb', backend='pillow')
    except Exception as e:  # noqa: BLE001 - any I/O or decoder error means an unusable file
        raise IOError(f'cannot read image {path!r}: {type(e).__name__}: {e}') from e
    if arr is None or arr.ndim != 3 or min(arr.shape[:2]) < 1:
        raise IOError(f'cannot read image {path!r}: empty image of shape {getattr(arr, "shape", None)}')
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
        max_refetch: how many following images to try when one is unusable.
        min_size: images whose shorter side is below this (px) are skipped (original: 10).
        backend_args: mmengine file-I/O backend arguments for the json, the folder scan and the images.
    Each item is the pipeline output with ``results`` keys ``img`` (RGB uint8), ``img_path``, ``sample_idx`` and
    ``epoch``; ``data_samples['skipped']`` joins (with a newline) the paths skipped to produce it. ``skipped_paths``
    lists the distinct unusable files met by this process (the per-epoch, all-rank count is the distiller's).
    """

    METAINFO = dict(classes=())

    def __init__(self, *args, max_refetch: int = 100, min_size: int = 10, synthetic: Optional[dict] = None,
                 backend_args: Optional[dict] = None, **kwargs):
        self.skipped_paths: List[str] = []
        self.synthetic = synthetic
        self.min_size = int(min_size)
        self.backend_args = backend_args
        super().__init__(*args, max_refetch=max_refetch, **kwargs)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped_paths)

    def load_data_list(self) -> List[dict]:
        img_root = self.data_prefix.get('img', '') or self.data_root or ''
        args = self.backend_args
        if self.synthetic is not None and self.ann_file and not fileio.exists(self.ann_file, backend_args=args):
            from .synthetic_images import generate_synthetic_dataset
            generate_synthetic_dataset(osp.dirname(self.ann_file) or '.', **self.synthetic)
        if self.ann_file:
            if not fileio.exists(self.ann_file, backend_args=args):
                raise FileNotFoundError(f'DistillImageDataset: annotation file {self.ann_file!r} not found')
            images = fileio.load(self.ann_file, file_format='json', backend_args=args).get('images')
            if not images:
                raise ValueError(f"DistillImageDataset: {self.ann_file!r} has no 'images' list")
            files = [im['file_name'] for im in images]
        else:
            if not fileio.isdir(img_root, backend_args=args):
                raise FileNotFoundError(f'DistillImageDataset: image folder {img_root!r} not found')
            files = sorted(fileio.list_dir_or_file(img_root, list_dir=False, suffix=IMG_EXTENSIONS,
                                                   recursive=True, backend_args=args))
        if not files:
            raise ValueError(f'DistillImageDataset: no images found (ann_file={self.ann_file!r}, folder={img_root!r})')
        return [dict(img_path=fileio.join_path(img_root, p, backend_args=args) if img_root else p) for p in files]

    def _split(self, idx: int):
        n = len(self)
        return divmod(int(idx), n) if idx >= n else (0, int(idx))

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped_paths:  # warn once per file and process
            self.skipped_paths.append(path)
            msg = f'DistillImageDataset: skipping unusable image ({reason})'
            warnings.warn(msg)
            print_log(msg, logger='current', level=30)

    def prepare_sample(self, idx: int, epoch: int = 0) -> Optional[dict]:
        info = self.get_data_info(idx)
        path = info['img_path']
        try:
            img = read_rgb(path, self.backend_args)
        except IOError as e:
            self._skip(path, str(e))
            return None
        if min(img.shape[:2]) < self.min_size:
            self._skip(path, f'{path!r} is {img.shape[1]}x{img.shape[0]} px, a side is under {self.min_size} px')
            return None
        results = dict(img=img, img_path=path, sample_idx=idx, epoch=epoch, ori_shape=img.shape[:2])
        return self.pipeline(results)

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        epoch, i = self._split(idx)
        skipped = []
        for k in range(self.max_refetch + 1):
            j = (i + k) % len(self)
            data = self.prepare_sample(j, epoch)
            if data is not None:
                if isinstance(data.get('data_samples'), dict):
                    data['data_samples']['skipped'] = SKIP_SEP.join(skipped)
                return data
            skipped.append(self.get_data_info(j)['img_path'])
        raise RuntimeError(f'DistillImageDataset: {self.max_refetch + 1} consecutive unusable images starting at '
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
                 max_box: float = 1024, synthetic: Optional[dict] = None, backend_args: Optional[dict] = None,
                 **kwargs):
        self.backend_args = backend_args
        self.seg_prefix = seg_prefix
        self.max_regions = max_regions
        self.min_box, self.max_box = min_box, max_box
        self.synthetic = synthetic
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        args = self.backend_args
        if self.synthetic is not None and not fileio.exists(self.ann_file, backend_args=args):
            from .synthetic_images import generate_synthetic_dataset
            generate_synthetic_dataset(osp.dirname(self.ann_file) or '.', **self.synthetic)
        if not fileio.exists(self.ann_file, backend_args=args):
            raise FileNotFoundError(f'RegionClsDataset: annotation file {self.ann_file!r} not found')
        coco = fileio.load(self.ann_file, file_format='json', backend_args=args)
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
            pan = read_rgb(info['seg_path'], self.backend_args).astype(np.int64)
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
        img = read_rgb(info['img_path'], self.backend_args)
        h, w = img.shape[:2]
        results = dict(img=img, img_path=info['img_path'], sample_idx=idx, regions=self._regions(info, h, w),
                       classes=self._metainfo['classes'])
        return self.pipeline(results)
