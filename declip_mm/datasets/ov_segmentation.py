"""Open-vocabulary semantic-segmentation datasets (CAT-Seg's 7 benchmarks + the training-free ones) and class names.

Class names ship as data in ``declip_mm/data/seg_classes/``:

* ``catseg_<bench>.json`` — CAT-Seg's lists (``coco171``, ``ade150``, ``ade847``, ``pc59``, ``pc459``, ``voc20``,
  ``voc20b`` = 20 VOC names + 39 PC-59 stuff names used as VOC-21 prompts); a name ``"a, b"`` lists synonyms.
* ``cls_<bench>.txt`` — training-free name files (one class a line, synonyms separated by ``"; "``, ProxyCLIP's
  naming; the background line of VOC-21 / COCO-Object lists stuff words).

Label layouts (see ``docs/segmentation.md`` and ``tools/dataset_converters/``): 8-bit PNGs for COCO-Stuff-171,
ADE-150 (``reduce_zero_label``), PC-59, VOC-20/21; **uint16 TIFF** for ADE-847 (ignore 65535) and PC-459, loaded with
:class:`LoadSegAnnotations16` (mmseg's ``LoadAnnotations`` casts to uint8: 300 would read as 44).
"""
import io
import json
import os.path as osp
from typing import List, Sequence, Union

import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import BaseSegDataset

from declip_mm.registry import DATASETS, SEG_DATASETS, SEG_TRANSFORMS, TRANSFORMS, register_everywhere

SEG_CLASSES_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'seg_classes')

__all__ = ['load_class_names', 'load_name_sets', 'first_synonym', 'LoadSegAnnotations16', 'SEG_CLASSES_DIR']


def _resolve(spec: str) -> str:
    if osp.isfile(spec):
        return spec
    for cand in (osp.join(SEG_CLASSES_DIR, spec), osp.join(SEG_CLASSES_DIR, spec + '.json'),
                 osp.join(SEG_CLASSES_DIR, spec + '.txt')):
        if osp.isfile(cand):
            return cand
    raise FileNotFoundError(f'class-name list {spec!r} is neither a file nor one of the shipped lists in '
                            f'{SEG_CLASSES_DIR} (e.g. catseg_ade150, cls_voc21)')


def load_class_names(spec: Union[str, Sequence[str]]) -> List[str]:
    """Class names from a list, a shipped list name (``'catseg_ade150'``) or a ``.json`` / ``.txt`` file.

    A ``.txt`` file has one class a line (its synonyms kept joined by ``"; "``).
    """
    if spec is None:
        raise ValueError('no class names given: set class_names to a list or a shipped list such as catseg_ade150')
    if not isinstance(spec, str):
        names = [str(n) for n in spec]
    else:
        path = _resolve(spec)
        if path.endswith('.json'):
            with open(path) as f:
                names = json.load(f)
        else:
            with open(path) as f:
                names = [ln.rstrip('\n') for ln in f if ln.strip()]
    if not names:
        raise ValueError(f'class-name list {spec!r} is empty')
    return names


def load_name_sets(spec: Union[str, Sequence], sep: str = '; ') -> List[List[str]]:
    """Per-class synonym lists: a name file (``sep``-separated synonyms) or a list of str / list of str."""
    if isinstance(spec, str):
        return [[s.strip() for s in line.split(sep) if s.strip()] for line in load_class_names(spec)]
    out = []
    for item in spec:
        out.append([item] if isinstance(item, str) else [str(s) for s in item])
    if not out:
        raise ValueError('empty class-name list')
    return out


def first_synonym(name: str) -> str:
    """CAT-Seg uses only the first synonym of ``"a, b, c"``."""
    return name.split(', ')[0].strip() if ', ' in name else name.strip()


# --------------------------------------------------------------------------------------------------------------
# 16-bit label loading
# --------------------------------------------------------------------------------------------------------------
@register_everywhere(TRANSFORMS, SEG_TRANSFORMS)
class LoadSegAnnotations16(BaseTransform):
    """Load a semantic label map keeping its integer depth (uint16 TIFF/PNG, int32), unlike mmseg's uint8 cast.

    Adds ``gt_seg_map`` (np.ndarray (H, W), uint8/uint16/int32 as stored) and appends it to ``seg_fields``.
    ``reduce_zero_label`` (0 -> ``ignore_index``, others -1) and the dataset ``label_map`` are honoured.

    Args:
        reduce_zero_label: None = take the dataset's flag.
        ignore_index: value used by ``reduce_zero_label`` for former zeros (255 for 8-bit sets).
    """

    def __init__(self, reduce_zero_label=None, ignore_index: int = 255, backend_args=None):
        self.reduce_zero_label = reduce_zero_label
        self.ignore_index = ignore_index
        self.backend_args = backend_args

    @staticmethod
    def decode(data: bytes, path: str = '<bytes>') -> np.ndarray:
        from PIL import Image
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.array(im)
        except Exception as e:  # noqa: BLE001
            raise OSError(f'cannot decode label map {path}: {e}') from e
        if arr.ndim == 3:
            arr = arr[..., 0]
        if arr.dtype == np.int64 or arr.dtype == np.uint32:
            arr = arr.astype(np.int32)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        return arr

    def transform(self, results: dict) -> dict:
        path = results['seg_map_path']
        seg = self.decode(fileio.get(path, backend_args=self.backend_args), path)
        rzl = self.reduce_zero_label
        if rzl is None:
            rzl = results.get('reduce_zero_label', False)
        if rzl:
            seg = seg.astype(np.int32)
            seg = np.where(seg == 0, self.ignore_index, seg - 1)
            seg[seg == self.ignore_index - 1] = self.ignore_index
        if results.get('label_map', None):
            src = seg.copy()
            for old, new in results['label_map'].items():
                seg[src == old] = new
        if seg.dtype == np.int32 and seg.size and seg.min() >= 0 and seg.max() <= 65535:
            seg = seg.astype(np.uint16)  # cv2-friendly for Resize / Flip
        results['gt_seg_map'] = seg
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self):
        return f'{self.__class__.__name__}(reduce_zero_label={self.reduce_zero_label})'


# --------------------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------------------
def _meta(list_name: str, **extra) -> dict:
    names = load_class_names(list_name)
    return dict(classes=tuple(names), **extra)


def _palette(n: int, seed: int = 7) -> list:
    rng = np.random.RandomState(seed)
    return rng.randint(0, 255, size=(n, 3)).tolist()


class _OVSegBase(BaseSegDataset):
    """Base: metainfo classes from a shipped name list, deterministic palette."""
    LIST = None
    IMG_SUFFIX = '.jpg'
    SEG_SUFFIX = '.png'
    REDUCE_ZERO = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.LIST is not None:
            names = load_class_names(cls.LIST)
            cls.METAINFO = dict(classes=tuple(names), palette=_palette(len(names)))

    def __init__(self, img_suffix=None, seg_map_suffix=None, reduce_zero_label=None, **kwargs):
        super().__init__(img_suffix=img_suffix or self.IMG_SUFFIX, seg_map_suffix=seg_map_suffix or self.SEG_SUFFIX,
                         reduce_zero_label=self.REDUCE_ZERO if reduce_zero_label is None else reduce_zero_label,
                         **kwargs)


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegCOCOStuff171Dataset(_OVSegBase):
    """COCO-Stuff-164k, 171 train ids (255 unlabeled): ``images/train2017/*.jpg`` + ``*_labelTrainIds.png``."""
    LIST = 'catseg_coco171'
    SEG_SUFFIX = '_labelTrainIds.png'


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegADE150Dataset(_OVSegBase):
    """ADEChallengeData2016 (mmseg layout), label value - 1, 0 -> 255."""
    LIST = 'catseg_ade150'
    REDUCE_ZERO = True


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegADE847Dataset(_OVSegBase):
    """ADE20K-full (2021_17_01) val, pre-downscaled to short side <= 512; uint16 TIFF labels, ignore 65535."""
    LIST = 'catseg_ade847'
    SEG_SUFFIX = '.tif'

    def __init__(self, ignore_index: int = 65535, **kwargs):
        super().__init__(ignore_index=ignore_index, **kwargs)


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegPC59Dataset(_OVSegBase):
    """PASCAL-Context-59 val from mmseg's ``pascal_context.py`` layout (``SegmentationClassContext``, 0 = background):
    ``reduce_zero_label`` gives CAT-Seg's 0..58 ids (background -> 255); CAT-Seg naming ("diningtable")."""
    LIST = 'catseg_pc59'
    REDUCE_ZERO = True


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegPC459Dataset(_OVSegBase):
    """PASCAL-Context-459 val: uint16 TIFF ``LabelMap - 1`` (0..458; 255 is a real class; declared ignore 459)."""
    LIST = 'catseg_pc459'
    SEG_SUFFIX = '.tif'

    def __init__(self, ignore_index: int = 459, **kwargs):
        super().__init__(ignore_index=ignore_index, **kwargs)


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegVOC20Dataset(_OVSegBase):
    """PASCAL VOC 2012 val without background: raw ``SegmentationClass`` PNGs with ``reduce_zero_label``
    (0 -> 255, 1..20 -> 0..19; the 255 boundary stays 255) = CAT-Seg's voc20 conversion."""
    LIST = 'catseg_voc20'
    REDUCE_ZERO = True


@register_everywhere(DATASETS, SEG_DATASETS)
class CATSegVOC21Dataset(BaseSegDataset):
    """PASCAL VOC 2012 val with background (raw PNGs: 0 = background, 1..20 objects, 255 ignore).

    CAT-Seg prompts the 59 ``voc20b`` names and collapses prompt index >= 20 to background; the segmentor's
    ``background_collapse=dict(num_foreground=20, background_first=True)`` maps onto this layout (a class
    permutation of CAT-Seg's background-last layout: identical mIoU).
    """
    METAINFO = dict(classes=('background', ) + tuple(load_class_names('catseg_voc20')), palette=_palette(21))

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)


@register_everywhere(DATASETS, SEG_DATASETS)
class VOC20Dataset(CATSegVOC20Dataset):
    """Training-free VOC-20 (same layout as :class:`CATSegVOC20Dataset`; ProxyCLIP naming in the name file)."""


@register_everywhere(DATASETS, SEG_DATASETS)
class COCOObjectDataset(BaseSegDataset):
    """COCO-Object (background + 80 things) from COCO-Stuff-164k: ``*_instanceTrainIds.png`` written by
    ``tools/dataset_converters/coco_object.py`` (0 background, 1..80 things, 255 unlabeled)."""
    METAINFO = dict(classes=('background', ) + tuple(load_class_names('catseg_coco171')[:80]), palette=_palette(81))

    def __init__(self, img_suffix='.jpg', seg_map_suffix='_instanceTrainIds.png', **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
