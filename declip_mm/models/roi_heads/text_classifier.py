"""Cosine classifier against fixed CLIP text embeddings (F-ViT / F-VLM), plus the text-embedding file loader.

Embedding files (written by ``tools/gen_text_embeddings.py``):

* ``.pt``  — ``dict`` class name -> (D,) vector, containing every class name and ``'background'``; rows are
  selected by name (exact, else the cleaned name ``_``->space, lower-case), so one file serves several class lists;
* ``.npy`` — (K+1, D) array **with its names file** ``<same stem>.names.txt`` next to it (one name a line, row
  order, ``background`` included).  Rows are then selected by name like a ``.pt`` file; a ``.npy`` without its
  names file is refused (a file of the right length in another class order would silently use the wrong rows).
"""
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from declip_mm.models.text.templates import processed_name
from declip_mm.registry import DET_MODELS, MODELS, register_everywhere

BACKGROUND = 'background'


def npy_names_path(path: str) -> str:
    """The names file that must accompany an embedding ``.npy``: ``x.npy`` -> ``x.names.txt``."""
    return osp.splitext(path)[0] + '.names.txt'


def _read_npy_with_names(path: str) -> dict:
    names_file = npy_names_path(path)
    if not osp.isfile(names_file):
        raise ValueError(f'{path}: a .npy text-embedding array carries no class names, so its rows cannot be checked '
                         f'against the classes; put the names (one a line, row order, "background" included) in '
                         f'{names_file}, or use the .pt file written by tools/gen_text_embeddings.py')
    with open(names_file) as f:
        names = [ln.rstrip('\n') for ln in f if ln.strip()]
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 2 or arr.shape[0] != len(names):
        raise ValueError(f'{path}: array of shape {tuple(arr.shape)} but {len(names)} names in {names_file} '
                         '(expected one row per name)')
    if len(set(names)) != len(names):
        raise ValueError(f'{names_file}: duplicate class names')
    if BACKGROUND not in names:
        raise ValueError(f'{names_file}: no "{BACKGROUND}" row')
    return dict(zip(names, arr))


def _local_embedding_file(spec: str) -> str:
    """Local path of a text-embedding file given as a path, ``http(s)://`` URL or ``hf-hub:`` file (downloaded once;
    a remote ``.npy`` brings its ``.names.txt`` along, which lands beside it in the cache)."""
    from declip_mm.utils.remote_files import is_remote, resolve_file, split_sha256
    if is_remote(spec) and split_sha256(spec)[0].endswith('.npy'):
        try:
            resolve_file(npy_names_path(split_sha256(spec)[0]))
        except OSError:
            pass  # reported below as a missing names file, next to the array
    return resolve_file(spec)


def load_text_embeddings(source: Union[str, Tensor, np.ndarray, dict],
                         class_names: Optional[Sequence[str]] = None,
                         num_classes: Optional[int] = None,
                         dim: Optional[int] = None,
                         return_names: bool = False):
    """Load a (K+1, D) L2-normalised float32 matrix: K class rows in ``class_names`` order, background last.

    Args:
        source: ``.pt`` file (dict name -> vector) / ``.npy`` file with its ``.names.txt`` (local paths,
            ``http(s)://`` URLs or ``hf-hub:`` files) / a dict / an array or
            tensor (rows already in class order, background last; only for code, a file always carries names).
        class_names: class order; None: the order of the file / dict.
        num_classes: expected K (the dataset's class count); mismatch raises ``ValueError``.
        dim: expected D (the region-embedding width); mismatch raises ``ValueError``.
        return_names: also return the K class names of the rows (None for a bare array).
    """
    what = source if isinstance(source, str) else type(source).__name__
    if isinstance(source, str):
        source = _local_embedding_file(source)
        if not osp.isfile(source):
            raise FileNotFoundError(f'text-embedding file not found: {source} '
                                    '(generate it with tools/gen_text_embeddings.py)')
        if source.endswith('.npy'):
            source = _read_npy_with_names(source)
        elif source.endswith(('.pt', '.pth')):
            source = torch.load(source, map_location='cpu', weights_only=True)
        else:
            raise ValueError(f'{source}: text embeddings must be a .pt dict (name -> vector) or a .npy array with '
                             'its .names.txt')
    if isinstance(source, dict):
        if 'embeddings' in source and 'names' in source:  # tolerated alternative layout
            source = dict(zip(source['names'], source['embeddings']))
        from declip_mm.datasets.ov_detection import NAME_ALIASES
        lookup = dict(source)
        for k, v in source.items():
            lookup.setdefault(processed_name(k), v)
        for a, b in list(NAME_ALIASES.items()) + [(b, a) for a, b in NAME_ALIASES.items()]:
            if b in lookup:
                lookup.setdefault(a, lookup[b])
                lookup.setdefault(processed_name(a), lookup[b])
        if class_names is None:
            class_names = [k for k in source if k != BACKGROUND]
        names = list(class_names) + [BACKGROUND]
        missing = [n for n in names if n not in lookup and processed_name(n) not in lookup]
        if missing:
            raise KeyError(f'{what}: {len(missing)} class name(s) have no text embedding, e.g. {missing[:5]} '
                           f'(the file has {len(source)} entries; regenerate it for this class list)')
        rows = [torch.as_tensor(np.asarray(lookup[n] if n in lookup else lookup[processed_name(n)]), dtype=torch.float32)
                for n in names]
        emb = torch.stack([r.flatten() for r in rows])
        row_names = list(class_names)
    else:
        emb = torch.as_tensor(np.asarray(source) if not isinstance(source, Tensor) else source).float()
        if emb.dim() != 2:
            raise ValueError(f'{what}: text embeddings must be 2-D (K+1, D), got shape {tuple(emb.shape)}')
        if class_names is not None and emb.shape[0] != len(class_names) + 1:
            raise ValueError(f'{what}: {emb.shape[0]} rows but {len(class_names)} class names + 1 background '
                             f'row expected')
        row_names = list(class_names) if class_names is not None else None
    k = emb.shape[0] - 1
    if num_classes is not None and k != num_classes:
        hint = ' (is the background row missing?)' if k + 1 == num_classes else ''
        raise ValueError(f'{what}: {k} class embeddings (+ background) but the dataset/head has {num_classes} '
                         f'classes{hint}')
    if dim is not None and emb.shape[1] != dim:
        raise ValueError(f'{what}: embedding dimension {emb.shape[1]} != region-embedding width {dim} '
                         '(the text embeddings must come from the same CLIP model as the backbone)')
    if not torch.isfinite(emb).all() or (emb.norm(dim=1) == 0).any():
        raise ValueError(f'{what}: text embeddings contain non-finite or all-zero rows')
    emb = F.normalize(emb, dim=-1)
    return (emb, row_names) if return_names else emb


@register_everywhere(DET_MODELS, MODELS)
class TextEmbeddingClassifier(nn.Module):
    """Logits = T * cos(region embedding, text embedding) over K classes + background (last column).

    Used as ``cls_predictor_cfg`` of a ``ConvFCBBoxHead`` (which passes ``in_features`` = region-embedding width
    and ``out_features`` = K+1).  The text matrix is a fixed buffer; T (``logit_scale``) is a learned scalar
    (F-ViT: init 50, trained with weight decay) unless ``learn_logit_scale=False``.

    Args:
        text_embeddings: see :func:`load_text_embeddings`; None -> random unit vectors (tests only, warns).
        class_names: class order (list, preset like ``'ov_coco'`` / ``'lvis_v1'``, or names file); rows of the
            embedding file are selected by these names.  None: the file's own order (then ``class_names`` holds the
            file's names, which ``OVClassCheckHook`` compares with the dataset classes).
    Shapes: forward (N, D) -> (N, K+1).
    """

    def __init__(self, in_features: int, out_features: int, text_embeddings=None,
                 class_names: Union[None, str, Sequence[str]] = None, logit_scale: float = 50.0,
                 learn_logit_scale: bool = True):
        super().__init__()
        from declip_mm.datasets.ov_detection import resolve_class_names
        self.class_names: Optional[List[str]] = resolve_class_names(class_names)
        if self.class_names is not None and len(self.class_names) != out_features - 1:
            raise ValueError(f'{len(self.class_names)} class names given but the head has {out_features - 1} '
                             'classes (num_classes)')
        if text_embeddings is None:
            warnings.warn('TextEmbeddingClassifier: no text embeddings given, using random unit vectors')
            g = torch.Generator().manual_seed(0)
            emb = F.normalize(torch.randn(out_features, in_features, generator=g), dim=-1)
        else:
            emb, names = load_text_embeddings(text_embeddings, self.class_names, out_features - 1, in_features,
                                              return_names=True)
            if self.class_names is None:  # the file's own names, so OVClassCheckHook compares them with the dataset
                self.class_names = names
        # not persistent: embeddings always come from the config, so a checkpoint can be evaluated on other classes
        self.register_buffer('text_embeddings', emb, persistent=False)
        t = torch.tensor(float(logit_scale))
        if learn_logit_scale:
            self.logit_scale = nn.Parameter(t)
        else:
            self.register_buffer('logit_scale', t, persistent=False)  # fixed: never loaded from a checkpoint

    @property
    def num_classes(self) -> int:
        return self.text_embeddings.shape[0] - 1

    def cosine(self, x: Tensor) -> Tensor:
        """(N, D) -> (N, K+1) cosine similarities."""
        return F.normalize(x, dim=-1) @ self.text_embeddings.to(x.dtype).t()

    def forward(self, x: Tensor) -> Tensor:
        return self.logit_scale.to(x.dtype) * self.cosine(x)

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, dim={self.text_embeddings.shape[1]}'


def generate_text_embeddings(encoder, class_names: Sequence[str], templates: Optional[Sequence[str]] = None,
                             this_is: bool = True, background: bool = True, chunk: int = 64) -> 'dict':
    """name -> (D,) float32 CPU vector for every class (+ ``'background'``) with the ViLD recipe.

    ``encoder``: a :class:`declip_mm.models.text.CLIPTextEncoder`.  Each of the 63 ViLD templates (default) is
    filled (cleaned name, article from the raw name, "This is " rule if ``this_is``); per-sentence L2 norm, mean
    over templates, re-normalised.  The background vector uses the same recipe on the word "background".
    """
    from collections import OrderedDict

    from declip_mm.models.text.templates import VILD_TEMPLATES, plain_formatter, vild_formatter
    templates = tuple(templates or VILD_TEMPLATES)
    formatter = vild_formatter if this_is else plain_formatter
    names = list(class_names)
    if len(set(names)) != len(names):
        raise ValueError('duplicate class names')
    if background and BACKGROUND not in names:
        names.append(BACKGROUND)
    out = OrderedDict()
    with torch.no_grad():
        for i in range(0, len(names), chunk):
            part = names[i:i + chunk]
            emb = encoder.embed_classes(part, templates, formatter).float().cpu()
            for n, e in zip(part, emb):
                out[n] = e.clone()
    return out
