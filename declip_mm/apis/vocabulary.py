"""A user vocabulary: class names (with optional synonyms) from a list, a comma-separated string or a file."""
import json
import os.path as osp
from typing import List, Optional, Sequence, Union

__all__ = ['Vocabulary', 'parse_vocabulary']

TextsType = Union[str, Sequence[Union[str, Sequence[str]]]]

# A string ending like this names a vocabulary file, never a class (a missing one is an error, not a class name).
VOCAB_FILE_EXT = ('.txt', '.json')

# Shipped lists whose line holds the words of a class rather than its name (ProxyCLIP's convention: VOC-21 and
# COCO-Object start with a line of stuff words that together stand for "background").
SHIPPED_LABEL_NAMES = {'cls_voc21': {0: 'background'}, 'cls_coco_object': {0: 'background'}}


class Vocabulary:
    """Ordered classes, each a list of synonyms (the words given to the text tower).

    ``names`` label the results: the first synonym of each class unless ``names`` is given (a shipped list whose
    background class is a line of stuff words is labelled ``background``).
    """

    def __init__(self, synonyms: List[List[str]], names: Optional[Sequence[str]] = None):
        self.synonyms = synonyms
        if names is not None and len(names) != len(synonyms):
            raise ValueError(f'{len(names)} names for {len(synonyms)} classes')
        self._names = list(names) if names is not None else None

    @property
    def names(self) -> List[str]:
        return list(self._names) if self._names is not None else [s[0] for s in self.synonyms]

    def key(self) -> tuple:
        """Hashable identity (words and names)."""
        return tuple(map(tuple, self.synonyms)), tuple(self.names)

    def __len__(self) -> int:
        return len(self.synonyms)

    def __repr__(self) -> str:
        return f'Vocabulary({self.synonyms})' if self._names is None else \
            f'Vocabulary({self.synonyms}, names={self._names})'


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


def _norm(name: str) -> str:
    return ' '.join(name.split()).casefold()


def check_duplicates(names: Sequence[str]) -> None:
    """Raise when two classes have the same name (case and spacing ignored): their labels would be ambiguous.
    (A synonym may be shared: the shipped ADE-847 and COCO-Object lists do that.)"""
    seen, dups = {}, []
    for n in names:
        k = _norm(n)
        if k in seen:
            dups.append(repr(n) if n == seen[k] else f'{seen[k]!r} / {n!r}')
        seen.setdefault(k, n)
    if dups:
        raise ValueError(f'duplicated class names in the vocabulary (case and spacing ignored): {", ".join(dups[:5])}')


def parse_vocabulary(texts: TextsType) -> Vocabulary:
    """``texts``: a list (an item is a name or a list of synonyms), a string ``"red umbrella, dachshund; sausage
    dog"`` (classes split by ``,``, synonyms by ``;``), or a file: ``.txt`` one class a line (synonyms split by
    ``;`` as in ``declip_mm/data/seg_classes/cls_*.txt``) or ``.json`` list (an item ``"a, b"`` or ``["a", "b"]``
    lists synonyms), or the name of a shipped list (``cls_voc21``, ``catseg_ade150``).

    Raises ``FileNotFoundError`` for a ``.txt`` / ``.json`` path that does not exist, ``ValueError`` for an empty
    vocabulary or two classes of one name (case-insensitive: ``"Cat, cat"``; shipped lists are taken as they are)."""
    if texts is None:
        raise ValueError('empty vocabulary: give class names, e.g. texts="cat, dog" or a file with one class a line')
    names = None
    if isinstance(texts, str):
        shipped = None
        if not osp.isfile(texts) and ',' not in texts:
            shipped = _shipped_list(texts.strip())
            if shipped is None and texts.strip().lower().endswith(VOCAB_FILE_EXT):
                raise FileNotFoundError(f'vocabulary file not found: {texts}')
        path = shipped or texts
        if osp.isfile(path):
            src = path
            if path.endswith('.json'):
                with open(path, encoding='utf-8') as f:
                    try:
                        items = json.load(f)
                    except json.JSONDecodeError as e:
                        raise ValueError(f'{path}: not a valid json list of class names ({e})') from None
                if not isinstance(items, list):
                    raise ValueError(f'{path}: a vocabulary .json must hold a list of names')
                # CAT-Seg lists write synonyms as "a, b"
                sets = [[x.strip() for x in i.split(', ') if x.strip()] if isinstance(i, str)
                        else [str(x).strip() for x in i] for i in items]
            else:
                with open(path, encoding='utf-8') as f:
                    sets = [_split_class(ln) for ln in f if ln.strip()]
            if shipped:
                label = SHIPPED_LABEL_NAMES.get(texts.strip(), {})
                names = [label.get(i, s[0] if s else '') for i, s in enumerate(sets)]
        else:
            src = repr(texts)
            sets = [_split_class(c) for c in texts.split(',')]
    else:
        src = 'the texts list'
        sets = [_split_class(i) if isinstance(i, str) else [str(s).strip() for s in i if str(s).strip()]
                for i in texts]
    if names is not None:
        names = [n for n, s in zip(names, sets) if s]
    sets = [s for s in sets if s]
    if not sets:
        raise ValueError(f'empty vocabulary from {src}: give at least one class name '
                         '(e.g. --texts "cat, dog" or a file with one class a line)')
    vocab = Vocabulary(sets, names)
    if names is None:  # shipped benchmark lists keep their own repeats (ADE-847 has three "bag" classes)
        check_duplicates(vocab.names)
    return vocab
