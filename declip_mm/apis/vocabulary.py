"""A user vocabulary: class names (with optional synonyms) from a list, a comma-separated string or a file."""
import json
import os.path as osp
from typing import List, Sequence, Union

__all__ = ['Vocabulary', 'parse_vocabulary']

TextsType = Union[str, Sequence[Union[str, Sequence[str]]]]


class Vocabulary:
    """Ordered classes, each a list of synonyms; ``names`` (the first synonym of each) label the results."""

    def __init__(self, synonyms: List[List[str]]):
        self.synonyms = synonyms

    @property
    def names(self) -> List[str]:
        return [s[0] for s in self.synonyms]

    def __len__(self) -> int:
        return len(self.synonyms)

    def __repr__(self) -> str:
        return f'Vocabulary({self.synonyms})'


def _split_class(item: str) -> List[str]:
    return [s.strip() for s in item.split(';') if s.strip()]


def _shipped_list(name: str):
    """Path of a class list shipped in ``declip_mm/data/seg_classes`` (``cls_voc21``, ``catseg_ade150``, ...)."""
    from declip_mm.datasets.ov_segmentation import SEG_CLASSES_DIR
    for ext in ('.txt', '.json'):
        path = osp.join(SEG_CLASSES_DIR, name + ext)
        if name.startswith(('cls_', 'catseg_')) and osp.isfile(path):
            return path
    return None


def parse_vocabulary(texts: TextsType) -> Vocabulary:
    """``texts``: a list (an item is a name or a list of synonyms), a string ``"red umbrella, dachshund; sausage
    dog"`` (classes split by ``,``, synonyms by ``;``), or a file: ``.txt`` one class a line (synonyms split by
    ``;`` as in ``declip_mm/data/seg_classes/cls_*.txt``) or ``.json`` list (an item ``"a, b"`` or ``["a", "b"]``
    lists synonyms), or the name of a shipped list (``cls_voc21``, ``catseg_ade150``).  Empty or duplicated names
    raise."""
    if texts is None:
        raise ValueError('empty vocabulary: give class names, e.g. texts="cat, dog" or a file with one class a line')
    if isinstance(texts, str):
        if not osp.isfile(texts) and ',' not in texts:
            texts = _shipped_list(texts) or texts
        if osp.isfile(texts):
            src = texts
            if texts.endswith('.json'):
                with open(texts) as f:
                    items = json.load(f)
                if not isinstance(items, list):
                    raise ValueError(f'{texts}: a vocabulary .json must hold a list of names')
                # CAT-Seg lists write synonyms as "a, b"
                sets = [[x.strip() for x in i.split(', ') if x.strip()] if isinstance(i, str)
                        else [str(x).strip() for x in i] for i in items]
            else:
                with open(texts, encoding='utf-8') as f:
                    sets = [_split_class(ln) for ln in f if ln.strip()]
        else:
            src = repr(texts)
            sets = [_split_class(c) for c in texts.split(',')]
    else:
        src = 'the texts list'
        sets = [_split_class(i) if isinstance(i, str) else [str(s).strip() for s in i if str(s).strip()]
                for i in texts]
    sets = [s for s in sets if s]
    if not sets:
        raise ValueError(f'empty vocabulary from {src}: give at least one class name '
                         '(e.g. --texts "cat, dog" or a file with one class a line)')
    names = [s[0] for s in sets]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f'duplicated class names in the vocabulary: {dups}')
    return Vocabulary(sets)
