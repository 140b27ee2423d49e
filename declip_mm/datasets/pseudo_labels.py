"""Open-world pseudo boxes (OV-DQUO's format) merged into our detection datasets.

File format (a json **list** of COCO-style annotations, e.g. OV-DQUO's ``OW_COCO_R2.json`` / ``OW_LVIS_R3.json``)::

    [{"image_id": 9, "bbox": [x, y, w, h], "category_id": -1, "pseudo": 1, "weight": 0.83}, ...]

* ``bbox``: pixels of the original image, xywh, ``w > 0`` and ``h > 0``;
* ``category_id`` must be -1 (the class-agnostic "wildcard"); ``pseudo`` may be omitted, else it must be 1;
* ``weight``: the open-world detector's foreground score (>= 0), 1.0 when absent;
* entries with a true ``iscrowd`` are dropped (counted), as in the original readers;
* entries of images that are not in the dataset are ignored (counted).

Each kept box is clipped to its image and appended, after the image's true boxes, to ``data_info['instances']`` as
``{'bbox': [x1, y1, x2, y2], 'bbox_label': -1, 'ignore_flag': 0, 'pseudo': 1, 'pseudo_weight': w}``; a box that
lies entirely outside its image is clipped to nothing and skipped (counted) — what the original does (it clamps
boxes to the image and keeps those with positive width and height).  ``LoadPseudoAnnotations`` turns ``pseudo`` /
``pseudo_weight`` into ``gt_pseudo_flags`` / ``gt_pseudo_weights`` (true boxes: False / 1.0), and the ``Pseudo*``
transforms keep them aligned with ``gt_bboxes``.
"""
import json
import math
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from mmengine.fileio import join_path
from mmengine.logging import print_log
from mmengine.utils import is_abs

REQUIRED_KEYS = ('image_id', 'bbox', 'category_id')


def _entry_problem(a) -> Optional[str]:
    """Why entry ``a`` is not a valid pseudo annotation (None when it is)."""
    if not isinstance(a, dict):
        return f'is a {type(a).__name__}, not an annotation dict'
    missing = [k for k in REQUIRED_KEYS if k not in a]
    if missing:
        return f'misses the key(s) {missing} (required: {list(REQUIRED_KEYS)})'
    if a['category_id'] != -1:
        return f'has category_id {a["category_id"]!r}; pseudo boxes must have category_id -1'
    if 'pseudo' in a and a['pseudo'] not in (1, True):
        return f'has pseudo {a["pseudo"]!r}; a pseudo-label file holds pseudo boxes only (pseudo 1)'
    b = a['bbox']
    if (not isinstance(b, (list, tuple)) or len(b) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in b)):
        return 'has a bbox that is not 4 finite numbers [x, y, w, h]'
    if b[2] <= 0 or b[3] <= 0:
        return f'has a bbox with non-positive width or height (w={b[2]}, h={b[3]})'
    w = a.get('weight', 1.0)
    if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
        return f'has weight {w!r}; the weight must be a finite number >= 0'
    return None


def load_pseudo_labels(path: str) -> Tuple[Dict[int, List[Tuple[List[float], float]]], Dict[str, int]]:
    """Read and check a pseudo-label file.

    Returns:
        ``{image_id: [([x, y, w, h], weight), ...]}`` in file order, and counts
        ``{'entries', 'crowd_dropped', 'kept'}``.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        ValueError: not json, not a list, or an invalid entry (message names the file, the first bad entry's index,
            the problem and the entry).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pseudo-label file not found: {path} (dataset pseudo_ann_file)')
    try:
        with open(path) as f:
            anns = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not a json file ({e})') from None
    if not isinstance(anns, list):
        keys = f' with keys {sorted(anns)[:5]}' if isinstance(anns, dict) else ''
        raise ValueError(f'{path}: a pseudo-label file must be a json list of annotations '
                         f'{{image_id, bbox [x, y, w, h], category_id -1, pseudo 1, weight}}, got a '
                         f'{type(anns).__name__}{keys}')
    by_image: Dict[int, List[Tuple[List[float], float]]] = defaultdict(list)
    crowd = 0
    for i, a in enumerate(anns):
        problem = _entry_problem(a)
        if problem is not None:
            text = json.dumps(a) if isinstance(a, (dict, list)) else repr(a)
            raise ValueError(f'{path}: entry #{i} {problem}: {text[:300]}')
        if a.get('iscrowd', 0):
            crowd += 1
            continue
        by_image[a['image_id']].append(([float(v) for v in a['bbox']], float(a.get('weight', 1.0))))
    return dict(by_image), dict(entries=len(anns), crowd_dropped=crowd, kept=len(anns) - crowd)


def clip_xywh(bbox: List[float], width: float, height: float) -> Optional[List[float]]:
    """xywh -> xyxy clipped to the image; None when nothing is left (the original's clamp + positive-size rule)."""
    x, y, w, h = bbox
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if x2 > x1 and y2 > y1:
        return [x1, y1, x2, y2]
    return None


class PseudoLabelMixin:
    """Adds ``pseudo_ann_file`` to an mmdet detection dataset (put it before the dataset class in the bases).

    The pseudo boxes are appended to each image's instances in ``load_data_list`` (so before ``filter_data``, which
    then counts an image with only pseudo boxes as not empty).  Counts are kept in ``self.pseudo_stats`` and logged.
    In training, an image for which the pipeline returns None (e.g. ``PseudoFilterAnnotations`` with
    ``drop_empty=True`` when no box is left) is counted in ``self.num_empty_refetched`` and mmengine loads another
    one (the original OV-LVIS reader takes the next index instead of a random one).  An image file that cannot be
    read (with ``LoadImageFromFile(ignore_empty=True)``, as the OV-DQUO training pipelines use: missing, truncated,
    not an image) is skipped the same way, counted in ``self.unreadable_images`` (file -> times) and logged with
    its path the first time, so a damaged file does not stop a long run; without ``ignore_empty`` mmcv raises.
    """

    def __init__(self, *args, pseudo_ann_file: Optional[str] = None, **kwargs):
        self.pseudo_ann_file = pseudo_ann_file
        self.pseudo_stats: Dict[str, int] = {}
        self.num_empty_refetched = 0
        self.unreadable_images: Dict[str, int] = {}
        super().__init__(*args, **kwargs)

    # --- loading -------------------------------------------------------------------------------------------
    def _pseudo_path(self) -> str:
        path = self.pseudo_ann_file  # relative to data_root, like ann_file
        if not is_abs(path) and self.data_root:
            path = join_path(self.data_root, path)
        return path

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.pseudo_ann_file:
            self._merge_pseudo(data_list)
        return data_list

    def _merge_pseudo(self, data_list: List[dict]) -> None:
        path = self._pseudo_path()
        by_image, stats = load_pseudo_labels(path)
        ids = set()
        merged = outside = images = 0
        for info in data_list:
            img_id = info['img_id']
            ids.add(img_id)
            boxes = by_image.get(img_id)
            if not boxes:
                continue
            images += 1
            for bbox, weight in boxes:
                xyxy = clip_xywh(bbox, info['width'], info['height'])
                if xyxy is None:
                    outside += 1
                    continue
                info['instances'].append(
                    dict(bbox=xyxy, bbox_label=-1, ignore_flag=0, pseudo=1, pseudo_weight=weight))
                merged += 1
        unknown = sum(len(v) for k, v in by_image.items() if k not in ids)
        stats.update(merged=merged, outside_image_skipped=outside, unknown_image_skipped=unknown,
                     images_with_pseudo=images)
        self.pseudo_stats = stats
        print_log(f'{type(self).__name__}: {path}: {stats["entries"]} pseudo boxes, {merged} merged into '
                  f'{images} of {len(data_list)} images; skipped: {stats["crowd_dropped"]} crowd, {outside} outside '
                  f'their image, {unknown} of images not in {self.ann_file}', logger='current')

    # --- filtering / empty images --------------------------------------------------------------------------
    def filter_data(self) -> List[dict]:
        """mmdet's filter, except that with pseudo boxes ``filter_empty_gt`` keeps an image with any box (true or
        pseudo, not crowd).  The number of images without any box is logged either way."""
        empty = sum(1 for info in self.data_list if not _has_box(info))
        if not self.pseudo_ann_file or self.test_mode or not self.filter_cfg \
                or not self.filter_cfg.get('filter_empty_gt', False):
            out = super().filter_data()
        else:
            min_size = self.filter_cfg.get('min_size', 0)
            out = [info for info in self.data_list
                   if _has_box(info) and min(info['width'], info['height']) >= min_size]
        if self.pseudo_ann_file:
            self.pseudo_stats['images_without_box'] = empty
            print_log(f'{type(self).__name__}: {empty} of {len(self.data_list)} images have no box (true or pseudo); '
                      f'{len(self.data_list) - len(out)} images filtered out by filter_cfg', logger='current')
        return out

    def prepare_data(self, idx):
        data = super().prepare_data(idx)
        if data is None and not self.test_mode:
            path = self.get_data_info(idx).get('img_path') if self._skips_unreadable() else None
            problem = _unreadable(path) if path else None
            if problem is not None:
                first = path not in self.unreadable_images
                self.unreadable_images[path] = self.unreadable_images.get(path, 0) + 1
                if first:
                    print_log(f'{type(self).__name__}: cannot read image {path} ({problem}); it is skipped and '
                              f'another image is loaded instead ({len(self.unreadable_images)} unreadable file(s) so '
                              'far in this worker)', logger='current', level=30)
                return None
            self.num_empty_refetched += 1
            n = self.num_empty_refetched
            if n & (n - 1) == 0:  # 1, 2, 4, 8, ... per worker
                print_log(f'{type(self).__name__}: image #{idx} has no box left after the pipeline; another image '
                          f'is loaded instead ({n} so far in this worker)', logger='current', level=30)
        return data

    def _skips_unreadable(self) -> bool:
        """The pipeline loads images with ``ignore_empty=True`` (returns None for a file it cannot read)."""
        from mmcv.transforms import LoadImageFromFile
        return any(isinstance(t, LoadImageFromFile) and getattr(t, 'ignore_empty', False)
                   for t in getattr(self.pipeline, 'transforms', ()))


def _unreadable(path: str) -> Optional[str]:
    """Why the image file ``path`` cannot be decoded, or None if it can (checked only for images the pipeline
    dropped)."""
    import mmcv
    from mmengine.fileio import get
    try:
        img = mmcv.imfrombytes(get(path), flag='color', backend='pillow')
    except Exception as e:  # noqa: BLE001 - any read / decode failure makes the file unusable
        return f'{type(e).__name__}: {e}'
    return None if img is not None else 'not an image'


def _has_box(info: dict) -> bool:
    return any(not inst.get('ignore_flag', 0) for inst in info.get('instances', ()))
