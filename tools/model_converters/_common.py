"""Shared machinery of the checkpoint converters: rule-based key mapping with a strict account of every key.

Every source key must match a mapping rule or a drop rule (with its reason); anything else is an error naming the
key.  Mapped tensors are checked against the target shapes when they are known.  ``print_summary`` prints a
one-screen report (mapped / dropped / missing) like mmdet's converters.
"""
import os
import re
import sys
from collections import Counter, OrderedDict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run as `python tools/model_converters/x.py` from a clone without installing
    sys.path.insert(0, REPO_ROOT)

Target = Union[str, Callable[[re.Match, torch.Tensor], List[Tuple[str, torch.Tensor]]]]


class ConversionError(RuntimeError):
    """A source key no rule accounts for, a shape mismatch, or a missing target weight."""


class NoTargetName(ConversionError):
    """Raised by a rule function for a key its pattern matches but that has no name on the other side."""


class Report:
    def __init__(self, title: str):
        self.title = title
        self.mapped: 'OrderedDict[str, List[str]]' = OrderedDict()
        self.dropped: 'OrderedDict[str, str]' = OrderedDict()
        self.missing: List[str] = []
        self.added: 'OrderedDict[str, str]' = OrderedDict()


def convert_keys(sd: Dict[str, torch.Tensor], rules: Sequence[Tuple[str, Target]],
                 drops: Sequence[Tuple[str, str]] = (), title: str = 'conversion',
                 target_shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                 strict_missing: bool = True) -> Tuple['OrderedDict[str, torch.Tensor]', Report]:
    """Apply ``rules`` (first full match wins) to every key of ``sd``.

    Args:
        rules: (regex, target) pairs; target is a ``re`` replacement string or ``fn(match, tensor) -> [(key, t)]``
            (``fn`` returns None, or raises ``NoTargetName``, for a key the pattern matches but has no place: such a
            key is reported with the unaccounted ones).
        drops: (regex, reason) pairs for keys dropped on purpose (checked before the rules).
        target_shapes: key -> shape of the destination model; every produced key must be in it with that shape,
            and (``strict_missing``) every key of it must be produced.
    Raises:
        ConversionError naming the offending keys.
    """
    report = Report(title)
    out = OrderedDict()
    unmapped = []
    for k, v in sd.items():
        reason = next((r for pat, r in drops if re.fullmatch(pat, k)), None)
        if reason is not None:
            report.dropped[k] = reason
            continue
        for pat, tgt in rules:
            m = re.fullmatch(pat, k)
            if m is None:
                continue
            try:
                pairs = tgt(m, v) if callable(tgt) else [(m.expand(tgt), v)]
            except NoTargetName:
                pairs = None
            if pairs is None:
                unmapped.append(k)
                break
            for nk, nv in pairs:
                if nk in out:
                    raise ConversionError(f'{title}: two source keys map to {nk!r} (second: {k!r})')
                out[nk] = nv
            report.mapped[k] = [nk for nk, _ in pairs]
            break
        else:
            unmapped.append(k)
    if unmapped:
        raise ConversionError(f'{title}: {len(unmapped)} source key(s) are neither mapped nor known to be dropped: '
                              f'{unmapped[:20]}{" ..." if len(unmapped) > 20 else ""}')
    if target_shapes is not None:
        check_against(out, target_shapes, title, strict_missing, report)
    return out, report


def eva_rename_rule(out_prefix: str, in_prefix: str, to_release: bool):
    """Rule function renaming the matched visual key (group 1, after ``in_prefix``) between EVA-CLIP release and
    open_clip/timm names, prefixed with ``out_prefix``.  A key without a counterpart (a RoPE buffer that no drop
    rule covers, an unknown layer) returns None, so it is reported by name with the unaccounted keys."""
    def rule(m, v):
        from declip_mm.models.backbones.checkpoint import CheckpointError, eva_release_name, eva_timm_name
        try:
            name = (eva_release_name if to_release else eva_timm_name)(in_prefix + m.group(1))
        except CheckpointError:
            return None
        return None if name is None else [(out_prefix + name, v)]
    return rule


def check_against(out: Dict[str, torch.Tensor], target_shapes: Dict[str, Tuple[int, ...]], title: str,
                  strict_missing: bool = True, report: Optional[Report] = None) -> List[str]:
    """Shapes of ``out`` against the destination model; returns (or raises on) missing destination keys."""
    unknown = [k for k in out if k not in target_shapes]
    if unknown:
        raise ConversionError(f'{title}: produced key(s) the destination model does not have: {unknown[:20]}')
    bad = [f'{k}: {tuple(out[k].shape)} vs model {tuple(target_shapes[k])}' for k in out
           if tuple(out[k].shape) != tuple(target_shapes[k])]
    if bad:
        raise ConversionError(f'{title}: shape mismatch (wrong architecture / width?): {bad[:10]}')
    missing = [k for k in target_shapes if k not in out]
    if report is not None:
        report.missing = missing
    if missing and strict_missing:
        raise ConversionError(f'{title}: {len(missing)} weight(s) of the destination model are not in the source: '
                              f'{missing[:20]}{" ..." if len(missing) > 20 else ""}')
    return missing


def _group(keys: Iterable[str]) -> Counter:
    """Collapse block indices so a summary fits a screen: ``blocks.3.attn`` -> ``blocks.*.attn``."""
    return Counter(re.sub(r'\.\d+\.', '.*.', re.sub(r'\.\d+\.', '.*.', k)) for k in keys)


def print_summary(*reports: Report, file=None, width: int = 110) -> None:
    """One-screen summary: counts, then mapped / dropped / missing / added key groups."""
    file = file or sys.stdout
    for r in reports:
        n_out = sum(len(v) for v in r.mapped.values())
        print(f'== {r.title}: {len(r.mapped)} source keys mapped -> {n_out} keys, {len(r.dropped)} dropped, '
              f'{len(r.missing)} missing, {len(r.added)} added', file=file)
        groups = Counter()
        for src, dsts in r.mapped.items():
            a = re.sub(r'\.\d+', '.*', '.'.join(src.split('.')[:-1][:3]) or src)
            b = re.sub(r'\.\d+', '.*', '.'.join(dsts[0].split('.')[:-1][:4]) or dsts[0]) if dsts else '-'
            groups[(a, b)] += 1
        shown = list(groups.items())[:16]
        for (a, b), n in shown:
            print(f'   mapped  {n:4d} x {a}.* -> {b}.*'[:width], file=file)
        if len(groups) > len(shown):
            print(f'   ... {len(groups) - len(shown)} more mapped groups', file=file)
        reasons = Counter(r.dropped.values())
        for reason, n in reasons.items():
            example = next(k for k, v in r.dropped.items() if v == reason)
            print(f'   dropped {n:4d} x e.g. {example}: {reason}'[:width], file=file)
        for g, n in list(_group(r.missing).items())[:8]:
            print(f'   missing {n:4d} x {g}'[:width], file=file)
        for k, why in list(r.added.items())[:6]:
            print(f'   added   {k}: {why}'[:width], file=file)


def load_source(path: str, extra_globals=()) -> dict:
    """A source checkpoint (local path, ``http(s)://`` URL or ``hf-hub:`` file) read with
    ``torch.load(weights_only=True)`` and the project's one allow-list (``declip_mm.utils.run_checkpoints``: plain
    tensors and containers, numpy arrays / scalars of numpy 1 and 2, mmengine's run-state ``HistoryBuffer``), so
    mmengine run checkpoints (``work_dirs/*/epoch_k.pth``), mmdet 2.x and detectron2 files load; anything else is
    refused with an error naming the global.  Never a fallback to full unpickling.  ``extra_globals``: classes one
    source format needs beyond that (allowed for this file only)."""
    from declip_mm.utils.remote_files import resolve_file
    from declip_mm.utils.run_checkpoints import load_checkpoint_file
    local = resolve_file(path)
    if not os.path.isfile(local):
        raise FileNotFoundError(f'source checkpoint not found: {path}')
    return load_checkpoint_file(local, map_location='cpu', extra_globals=extra_globals)


def unwrap(obj, keys=('state_dict', 'model', 'module')) -> Dict[str, torch.Tensor]:
    """The flat tensor dict inside a training checkpoint (mmdet ``state_dict``, detectron2 ``model``, ...)."""
    while isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in keys:
            if isinstance(obj.get(k), dict):
                obj = obj[k]
                break
        else:
            raise ConversionError(f'no state dict found (top-level keys: {list(obj)[:10]})')
    if not isinstance(obj, dict) or not obj:
        raise ConversionError('the checkpoint holds no tensors')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in obj.items())


def save(obj, path: str) -> None:
    """Atomic ``torch.save`` (never leaves a half-written file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or '.', exist_ok=True)
    tmp = path + '.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def shapes_of(model: torch.nn.Module) -> 'OrderedDict[str, Tuple[int, ...]]':
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())
