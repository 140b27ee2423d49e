"""Open-vocabulary detection data: OV-COCO / OV-LVIS class lists (shipped as data) and the OV-COCO dataset.

Class lists live in ``declip_mm/data``:

* ``ov_coco/ov_coco_categories.json`` — the 65 OV-COCO categories (OVR-CNN split) in COCO-id order, each with
  its COCO ``id``, ``name`` and ``split`` (``base`` 48 / ``novel`` 17);
* ``ov_coco/coco_categories.json`` — the 80 stock COCO categories (id, name);
* ``ov_lvis/lvis_v1_categories.json`` — the 1203 LVIS v1 categories (id, name as in ``lvis_v1_val.json``,
  ``frequency`` r/c/f); rare (337) = novel.

Labels follow the configured class-name order (``metainfo['classes']``), which is also the order of the
text-embedding rows: ``OVCocoDataset`` maps every category id to the index of its **name** in that list, whatever
the order of the json's ``categories``.
"""
import json
import os.path as osp
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Union

from mmdet.datasets import CocoDataset, LVISV1Dataset
from mmdet.datasets.api_wrappers import COCO

from declip_mm.registry import DATASETS, DET_DATASETS, register_everywhere

from .pseudo_labels import PseudoLabelMixin

DATA_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')


def data_path(path: str) -> str:
    """Resolve ``path``: an existing file as is, else relative to the shipped ``declip_mm/data`` folder."""
    if osp.exists(path):
        return path
    cand = osp.join(DATA_ROOT, path)
    if osp.exists(cand):
        return cand
    raise FileNotFoundError(f'{path!r} is neither an existing file nor a file under {DATA_ROOT}')


@lru_cache(None)
def _load_json(rel: str):
    with open(data_path(rel)) as f:
        return json.load(f)


def ov_coco_categories() -> List[dict]:
    """The 65 OV-COCO categories (dicts with id, name, split), sorted by COCO id."""
    return [dict(c) for c in _load_json('ov_coco/ov_coco_categories.json')]


def lvis_v1_categories() -> List[dict]:
    """The 1203 LVIS v1 categories (dicts with id, name, frequency), sorted by id."""
    return [dict(c) for c in _load_json('ov_lvis/lvis_v1_categories.json')]


OV_COCO_CLASSES = tuple(c['name'] for c in ov_coco_categories())
OV_COCO_NOVEL_CLASSES = tuple(c['name'] for c in ov_coco_categories() if c['split'] == 'novel')
OV_COCO_BASE_CLASSES = tuple(c['name'] for c in ov_coco_categories() if c['split'] == 'base')
COCO_CLASSES = tuple(c['name'] for c in _load_json('ov_coco/coco_categories.json'))
LVIS_V1_CLASSES = tuple(c['name'] for c in lvis_v1_categories())
LVIS_V1_RARE_CLASSES = tuple(c['name'] for c in lvis_v1_categories() if c['frequency'] == 'r')


def _objects365_classes(version: str) -> tuple:
    from mmdet.datasets import Objects365V1Dataset, Objects365V2Dataset
    cls = Objects365V1Dataset if version == 'v1' else Objects365V2Dataset
    return tuple(cls.METAINFO['classes'])


def _mmdet_lvis_v1_classes() -> tuple:
    """mmdet's ``LVISV1Dataset`` class names (its metainfo; differs from the json in one spelling,
    ``speaker_(stereo_equipment)``, see ``NAME_ALIASES``)."""
    from mmdet.datasets import LVISV1Dataset
    return tuple(LVISV1Dataset.METAINFO['classes'])


# alternative spellings of the same class: dataset-metainfo name -> annotation-json name
NAME_ALIASES = {'speaker_(stereo_equipment)': 'speaker_(stero_equipment)'}

CLASS_PRESETS = {
    'ov_coco': lambda: OV_COCO_CLASSES,
    'coco': lambda: COCO_CLASSES,
    'lvis_v1': _mmdet_lvis_v1_classes,
    'objects365v1': lambda: _objects365_classes('v1'),
    'objects365v2': lambda: _objects365_classes('v2'),
}
NOVEL_PRESETS = {
    'ov_coco': lambda: OV_COCO_NOVEL_CLASSES,
    'lvis_v1': lambda: LVIS_V1_RARE_CLASSES,
}


def _read_names_file(path: str) -> List[str]:
    path = data_path(path)
    if path.endswith('.json'):
        with open(path) as f:
            obj = json.load(f)
        if isinstance(obj, dict) and 'categories' in obj:
            obj = sorted(obj['categories'], key=lambda c: c['id'])
        return [o['name'] if isinstance(o, dict) else str(o) for o in obj]
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip()]


def resolve_class_names(spec: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    """Class names from a preset (``'ov_coco'``, ``'coco'``, ``'lvis_v1'``, ``'objects365v1|v2'``), a file
    (``.txt`` one name a line, ``.json`` list of names / category dicts / a COCO-style annotation file), or a list.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec in CLASS_PRESETS:
            return list(CLASS_PRESETS[spec]())
        return _read_names_file(spec)
    return [str(s) for s in spec]


def resolve_novel_names(spec: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    """Novel class names from a preset (``'ov_coco'`` 17, ``'lvis_v1'`` 337 rare), a file or a list."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec in NOVEL_PRESETS:
            return list(NOVEL_PRESETS[spec]())
        return _read_names_file(spec)
    return [str(s) for s in spec]


def ov_class_weight(classes: Sequence[str], novel: Sequence[str], bg_weight: float) -> List[float]:
    """F-ViT's CE class weights: 1 per base class, 0 per novel class, then ``bg_weight`` (length C+1)."""
    novel = set(novel)
    unknown = novel - set(classes)
    if unknown:
        raise ValueError(f'novel classes not among the dataset classes: {sorted(unknown)[:5]}')
    return [0.0 if c in novel else 1.0 for c in classes] + [float(bg_weight)]


def coco_palette(n: int) -> List[tuple]:
    """A deterministic palette of ``n`` colours (for visualisation)."""
    import colorsys
    return [tuple(int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95)) for i in range(n)]


class NameOrderedCOCO(COCO):
    """mmdet's COCO wrapper whose ``get_cat_ids(cat_names=...)`` follows the order of ``cat_names``.

    pycocotools returns the matching ids in the json's category order, so mmdet's ``CocoDataset`` gives label i to
    the i-th matching json category: a json not sorted like the class list silently mislabels every box.  Here label
    i is the category **named** ``classes[i]``; a name listed twice in the json is an error.
    """

    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):  # noqa: B006 (pycocotools' signature)
        if not cat_names or sup_names or cat_ids:
            return super().get_cat_ids(cat_names=cat_names, sup_names=sup_names, cat_ids=cat_ids)
        by_name: Dict[str, List[int]] = {}
        for c in self.dataset['categories']:
            by_name.setdefault(c['name'], []).append(c['id'])
        dup = {n: by_name[n] for n in cat_names if len(by_name.get(n, ())) > 1}
        if dup:
            raise ValueError(f'category names listed more than once in the annotation file: {dup}')
        return [by_name[n][0] for n in cat_names if n in by_name]


@register_everywhere(DET_DATASETS, DATASETS)
class OVCocoDataset(PseudoLabelMixin, CocoDataset):
    """OV-COCO (OVR-CNN split): mmdet's ``CocoDataset`` over the 65 OV-COCO classes in COCO-id order.

    Use with the files written by ``tools/dataset_converters/make_ov_splits.py coco``
    (``instances_train2017_seen_2_65_cat.json`` — base annotations only, 65 categories listed — and
    ``instances_val2017_all_2.json``).  ``metainfo`` additionally carries ``base_classes`` / ``novel_classes``.
    A different class split (e.g. the synthetic set) is given through ``metainfo=dict(classes=..., novel_classes=...)``.

    Labels: the category named ``classes[i]`` gets label i (matched by name, then by category id), independent of
    the order of the json's ``categories`` (mmdet's ``CocoDataset`` uses the json order); every class must be a
    category of the file.

    ``pseudo_ann_file``: open-world pseudo boxes (OV-DQUO's json format, relative to ``data_root``) appended to each
    image's instances with label -1 (see ``declip_mm.datasets.pseudo_labels``).
    """
    COCOAPI = NameOrderedCOCO
    METAINFO = dict(classes=OV_COCO_CLASSES, base_classes=OV_COCO_BASE_CLASSES,
                    novel_classes=OV_COCO_NOVEL_CLASSES, palette=coco_palette(len(OV_COCO_CLASSES)))

    def __init__(self, *args, metainfo: Optional[Dict] = None, **kwargs):
        if metainfo is not None and 'classes' in metainfo:
            metainfo = dict(metainfo)
            classes = tuple(metainfo['classes'])
            metainfo.setdefault('novel_classes', ())
            metainfo.setdefault('base_classes', tuple(c for c in classes if c not in set(metainfo['novel_classes'])))
            metainfo.setdefault('palette', coco_palette(len(classes)))
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        classes = self.metainfo['classes']
        if len(self.cat_ids) != len(classes):
            raise ValueError(
                f'{self.ann_file}: {len(classes)} classes configured but only {len(self.cat_ids)} of them are '
                'categories of the annotation file (class names must match the json category names; '
                'build OV files with tools/dataset_converters/make_ov_splits.py)')
        return data_list


@register_everywhere(DET_DATASETS, DATASETS)
class OVLVISV1Dataset(PseudoLabelMixin, LVISV1Dataset):
    """mmdet's ``LVISV1Dataset`` that refuses an annotation file whose categories are not in the class order.

    mmdet (and its ``LVISMetric``) give label i to the i-th category of the json, while the text-embedding rows
    follow ``metainfo['classes']``; the stock ``lvis_v1_*.json`` files list their categories sorted by id, which is
    that order.  A json in any other order would silently mislabel every box, so it fails at load, naming the first
    category out of place.

    ``pseudo_ann_file``: open-world pseudo boxes, as for ``OVCocoDataset``.
    """

    @property
    def lvis(self):
        return self.__dict__['_lvis_api']

    @lvis.setter
    def lvis(self, api) -> None:  # mmdet assigns the freshly loaded LVIS API here, before it numbers the categories
        classes = self.metainfo['classes']
        cats = [api.cats[i] for i in api.get_cat_ids()]
        for i, c in enumerate(cats):
            want = classes[i] if i < len(classes) else None
            if want is None or c['name'] not in (want, NAME_ALIASES.get(want, want)):
                raise ValueError(
                    f'{self.ann_file}: category #{i} of the annotation file is {c["name"]!r} (id {c["id"]}) but class '
                    f'#{i} is {want!r}; LVIS labels follow the json\'s category order, which must be the class order of '
                    'the text embeddings (the stock lvis_v1_*.json files are sorted by id: sort "categories" by id)')
        if len(cats) != len(classes):
            raise ValueError(f'{self.ann_file}: {len(cats)} categories in the annotation file, {len(classes)} classes '
                             'configured')
        self.__dict__['_lvis_api'] = api

    @lvis.deleter
    def lvis(self) -> None:
        self.__dict__.pop('_lvis_api', None)


# ----------------------------------------------------------------------------------------------------------------
# Split construction (used by tools/dataset_converters/make_ov_splits.py)
# ----------------------------------------------------------------------------------------------------------------
def _check_coco_json(ann: dict, what: str) -> None:
    for key in ('images', 'annotations', 'categories'):
        if key not in ann:
            raise ValueError(f'{what}: not a COCO-style annotation file (missing "{key}")')


def make_ov_coco_split(ann: dict, keep_classes: str = 'base', categories: Optional[List[dict]] = None,
                       all_categories: bool = True) -> dict:
    """OVR-CNN OV-COCO split of a stock ``instances_*2017.json`` dict.

    Keeps the 65 OV-COCO categories (original ids, id order), the annotations (crowd included) of
    ``keep_classes`` ('base' -> 48 base classes, e.g. for train; 'all' -> all 65, for val; 'novel' -> 17), and only
    images left with >= 1 annotation.  ``all_categories``: list all 65 categories (F-ViT's ``*_65_cat.json``, so
    labels index the 65-class space); False lists only the kept ones (OVR-CNN's ``instances_train2017_seen_2.json``).
    """
    _check_coco_json(ann, 'make_ov_coco_split')
    cats = categories if categories is not None else ov_coco_categories()
    if keep_classes not in ('base', 'novel', 'all'):
        raise ValueError(f"keep_classes must be 'base', 'novel' or 'all', got {keep_classes!r}")
    by_id = {c['id']: c for c in ann['categories']}
    for c in cats:
        src = by_id.get(c['id'])
        if src is None or src['name'] != c['name']:
            raise ValueError(f'category {c["id"]} ({c["name"]}) not found with that id/name in the input json; '
                             'expected the stock COCO 2017 categories')
    split_ids = {c['id'] for c in cats}
    keep_ids = {c['id'] for c in cats if keep_classes == 'all' or c['split'] == keep_classes}
    anns = [a for a in ann['annotations'] if a['category_id'] in keep_ids]
    img_ids = {a['image_id'] for a in anns}
    out = {k: v for k, v in ann.items() if k not in ('images', 'annotations', 'categories')}
    out['images'] = [im for im in ann['images'] if im['id'] in img_ids]
    out['annotations'] = anns
    listed = split_ids if all_categories else keep_ids
    out['categories'] = sorted((dict(by_id[i]) for i in listed), key=lambda c: c['id'])
    return out


def make_ov_lvis_split(ann: dict, remove_frequency: Sequence[str] = ('r',)) -> dict:
    """OV-LVIS training file from a stock ``lvis_v1_train.json`` dict: all 1203 categories kept, the annotations of
    categories whose ``frequency`` is in ``remove_frequency`` (rare) removed; images are all kept (images without
    annotations are dropped by ``filter_empty_gt`` at load time).  Category ``image_count`` / ``instance_count`` are
    recomputed (rare classes get 0, i.e. zero CE weight under F-ViT's rule)."""
    _check_coco_json(ann, 'make_ov_lvis_split')
    if any('frequency' not in c for c in ann['categories']):
        raise ValueError('make_ov_lvis_split: categories lack the "frequency" field; expected an LVIS v1 json')
    removed = {c['id'] for c in ann['categories'] if c['frequency'] in set(remove_frequency)}
    anns = [a for a in ann['annotations'] if a['category_id'] not in removed]
    out = {k: v for k, v in ann.items() if k not in ('annotations', 'categories')}
    out['annotations'] = anns
    inst, imgs = {}, {}
    for a in anns:
        inst[a['category_id']] = inst.get(a['category_id'], 0) + 1
        imgs.setdefault(a['category_id'], set()).add(a['image_id'])
    cats = []
    for c in sorted(ann['categories'], key=lambda c: c['id']):
        c = dict(c)
        c['instance_count'] = inst.get(c['id'], 0)
        c['image_count'] = len(imgs.get(c['id'], ()))
        cats.append(c)
    out['categories'] = cats
    return out
