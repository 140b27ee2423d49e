"""Reading CLIP / DeCLIP checkpoints into open_clip naming, and exporting DeCLIPViT backbones.

Accepted files (read with ``torch.load(weights_only=True)``):

* open_clip state dicts: OpenAI-style (``visual.conv1.weight``, packed ``attn.in_proj_weight``) or EVA02 through
  timm (``visual.trunk.*``);
* the original EVA-CLIP release files (``EVA02_CLIP_B_psz16_s8B.pt``; ``visual.blocks.i.attn.q_proj.weight``,
  ``q_bias``, ``inner_attn_ln``, ``mlp.w1/w2/w3``, ``text.*``): converted with timm's own
  ``eva.checkpoint_filter_fn``;
* DeCLIP / CLIPSelf training files (``epoch_k.pt``: the full CLIP in EVA naming under ``state_dict`` / ``model`` /
  ``module``, possibly with ``module.`` prefixes, text tower included);
* our exported backbones (``{'state_dict': visual.*, 'meta': {'declip_mm': {...}}}``), which record the dense mode;
* OpenAI's TorchScript archives (``ViT-B-16.pt``, ``ViT-L-14-336px.pt``): their parameters and buffers are read by
  :func:`read_torchscript_state_dict` without running any pickle code or TorchScript.

Everything is normalised to the key names of an open_clip model (``visual.*`` plus the text tower's names).
"""
import io
import os
import pickle
import re
import warnings
import zipfile
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

ROPE_KEY_HINTS = ('rope.freqs', 'rope.pos_embed', 'rope.bands')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


def read_checkpoint(path: str, wrapper_keys=('state_dict', 'model', 'module')
                    ) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Load a checkpoint file -> (flat state dict with wrappers and ``module.`` removed, declip_mm meta or {}).

    ``path``: a local file, or an ``http(s)://`` / ``hf-hub:`` spec (``declip_mm.utils.remote_files``).
    ``.safetensors`` files are read with safetensors; everything else with ``torch.load(weights_only=True)`` and the
    allow-list of ``declip_mm.utils.run_checkpoints`` (errors name a refused global, or say the file is truncated).
    Nested wrappers named in ``wrapper_keys`` are unwrapped (e.g. DINO's ``teacher``).
    """
    from declip_mm.utils.remote_files import resolve_file
    from declip_mm.utils.run_checkpoints import CheckpointLoadError, load_checkpoint_file
    spec = path
    path = resolve_file(path) if path else path  # http(s):// and hf-hub: specs: downloaded once into the cache
    if not path or not os.path.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint file not found: {spec!r} (give a local file, an http(s):// URL or '
                                      'an hf-hub: file)')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            obj = load_file(path)
        elif is_torchscript_archive(path):
            obj = read_torchscript_state_dict(path)
        else:  # weights_only=True with the project's one allow-list; names a refused global, or says truncated
            obj = load_checkpoint_file(path, map_location='cpu')
    except CheckpointError as e:  # the TorchScript reader's own errors (refused global, ...) already say what
        raise CheckpointError(f'{path}: {e}' if path not in str(e) else str(e)) from None
    except CheckpointLoadError as e:
        raise CheckpointError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - safetensors / zip errors of a damaged file
        raise CheckpointError(
            f'could not read checkpoint {path!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]}): the file is '
            'damaged or truncated, or not a state dict / TorchScript archive.') from e
    meta = {}
    if isinstance(obj, dict) and isinstance(obj.get('meta'), dict):
        meta = obj['meta'].get('declip_mm', {})
    unwrapped = True
    while unwrapped and isinstance(obj, dict):
        unwrapped = False
        for key in wrapper_keys:
            if isinstance(obj.get(key), dict):
                obj, unwrapped = obj[key], True
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'{path!r} does not contain a state dict of tensors')
    sd = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in obj.items()}
    return sd, meta


# ---------------------------------------------------------------------------------------------- TorchScript archives
# A TorchScript archive is a zip: ``<name>/data.pkl`` (the module tree as a pickle of ``__torch__.*`` objects whose
# state is a dict of attributes), ``<name>/data/<key>`` (raw tensor storages) and ``<name>/code/**.py`` (TorchScript
# source declaring ``__parameters__`` / ``__buffers__`` per class).  We never call ``torch.jit.load`` (it would
# compile and register that source) and never unpickle with ``pickle.load``'s default class lookup: the restricted
# unpickler below resolves exactly the globals such an archive needs (tensor rebuild, storage dtypes, OrderedDict,
# TorchScript's list/type-tag helpers) to local data-only stand-ins, and ``__torch__.*`` classes to an inert
# attribute holder.  Anything else is an error.
_TS_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'HalfStorage': torch.float16, 'BFloat16Storage': torch.bfloat16,
    'DoubleStorage': torch.float64, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool}


class _TSObject:
    """Inert stand-in for a ``__torch__.*`` object (one subclass per class name): holds its attribute dict."""
    _ts_class = ''
    _ts_state: dict = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError(f'TorchScript object {self._ts_class} has a non-dict state ({type(state).__name__})')
        self._ts_state = state


class _TSTensorRef:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


def _ts_rebuild_tensor(storage, offset, size, stride, *unused):
    return ('tensor', storage, offset, tuple(size), tuple(stride))


def _ts_identity(x, *unused):
    return x


class _TSUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ('torch._utils', '_rebuild_tensor_v2'): _ts_rebuild_tensor,
        ('torch._utils', '_rebuild_tensor'): _ts_rebuild_tensor,
        ('collections', 'OrderedDict'): dict,
        ('torch.jit._pickle', 'build_intlist'): _ts_identity,
        ('torch.jit._pickle', 'build_doublelist'): _ts_identity,
        ('torch.jit._pickle', 'build_boollist'): _ts_identity,
        ('torch.jit._pickle', 'build_tensorlist'): _ts_identity,
        ('torch.jit._pickle', 'build_tensor_from_id'): _ts_identity,
        ('torch.jit._pickle', 'restore_type_tag'): _ts_identity,
    }

    def find_class(self, module, name):
        if module == 'torch' and name in _TS_STORAGE_DTYPES:
            return _TS_STORAGE_DTYPES[name]
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == '__torch__' or module.startswith('__torch__.'):
            return type(name, (_TSObject, ), {'_ts_class': f'{module}.{name}'})
        raise CheckpointError(f'TorchScript archive needs the global {module}.{name}, which is not allowed')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
            raise CheckpointError(f'unexpected persistent id in TorchScript archive: {pid!r}')
        dtype = pid[1]
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f'unknown storage type {dtype!r} in TorchScript archive')
        return _TSTensorRef(dtype, str(pid[2]))


def is_torchscript_archive(path: str) -> bool:
    """True for a zip whose pickle describes a scripted module (has a ``code/`` folder and ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any('/code/' in n for n in names) and any(n.endswith('/constants.pkl') for n in names)


def _ts_declared_names(zf: zipfile.ZipFile, root: str) -> Dict[str, set]:
    """class qualname -> names declared in ``__parameters__`` / ``__buffers__`` of the archive's code files (read
    as text)."""
    out = {}
    for n in zf.namelist():
        if not (n.startswith(root + 'code/') and n.endswith('.py')):
            continue
        mod = '.'.join(n[len(root + 'code/'):-len('.py')].split('/'))
        src = zf.read(n).decode('utf-8', 'replace')
        for m in re.finditer(r'^class (\w+)\(Module\):\n((?:[ \t]+.*\n|\n)*)', src, flags=re.M):
            body = m.group(2)
            names = set()
            for key in ('__parameters__', '__buffers__'):
                d = re.search(key + r' = \[([^\]]*)\]', body)
                if d:
                    names |= set(re.findall(r'"([^"]+)"', d.group(1)))
            out[f'{mod}.{m.group(1)}'] = names
    return out


def read_torchscript_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Parameters and buffers of a TorchScript archive (e.g. OpenAI's ``ViT-B-16.pt``) as a flat state dict.

    Only tensors a class declares in ``__parameters__`` / ``__buffers__`` are returned (plain tensor attributes
    such as OpenAI's ``attn_mask`` are not weights).  No pickle code and no TorchScript runs (see above).
    """
    with zipfile.ZipFile(path) as zf:
        pkls = [n for n in zf.namelist() if n.endswith('/data.pkl')]
        if len(pkls) != 1:
            raise CheckpointError(f'{path!r}: expected one data.pkl in the TorchScript archive, found {len(pkls)}')
        root = pkls[0][:-len('data.pkl')]
        declared = _ts_declared_names(zf, root)
        obj = _TSUnpickler(io.BytesIO(zf.read(pkls[0]))).load()
        storages = {}

        def tensor(ref):
            _, st, offset, size, stride = ref
            if st.key not in storages:
                raw = bytearray(zf.read(f'{root}data/{st.key}'))
                storages[st.key] = torch.frombuffer(raw, dtype=st.dtype) if raw else torch.empty(0, dtype=st.dtype)
            return storages[st.key].as_strided(size, stride, offset).clone()

        sd = {}

        def walk(o, prefix):
            if not isinstance(o, _TSObject):
                return
            names = declared.get(o._ts_class, set())
            for k, v in o._ts_state.items():
                if isinstance(v, _TSObject):
                    walk(v, f'{prefix}{k}.')
                elif isinstance(v, tuple) and len(v) == 5 and v[0] == 'tensor' and k in names:
                    sd[prefix + k] = tensor(v)

        walk(obj, '')
    if not sd:
        raise CheckpointError(f'{path!r}: no parameters found in the TorchScript archive')
    return sd


def detect_format(sd: Dict[str, torch.Tensor]) -> str:
    """'openclip_eva' | 'eva_release' | 'openclip_vit' (keys prefixed with ``visual.``)."""
    keys = sd.keys()
    if any(k.startswith('visual.trunk.') for k in keys):
        return 'openclip_eva'
    if any(k.startswith(('visual.blocks.', 'visual.patch_embed.')) for k in keys):
        return 'eva_release'
    if any(k.startswith(('visual.conv1.', 'visual.transformer.')) for k in keys):
        return 'openclip_vit'
    raise CheckpointError(
        'unrecognised checkpoint layout: expected open_clip (visual.conv1 / visual.trunk), EVA-CLIP release '
        f'(visual.blocks / visual.patch_embed) or a declip_mm export; first keys: {list(keys)[:5]}')


def _add_visual_prefix(sd):
    """Visual-only state dicts without the ``visual.`` prefix (e.g. a bare timm EVA or open_clip tower)."""
    if any(k.startswith('visual.') for k in sd):
        return sd
    if any(k.startswith(('trunk.', 'conv1.', 'transformer.resblocks.')) for k in sd):
        return {'visual.' + k: v for k, v in sd.items()}
    if any(k.startswith(('blocks.', 'patch_embed.')) for k in sd):
        return {'visual.' + k: v for k, v in sd.items()}
    return sd


def to_openclip_keys(sd: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Convert a checkpoint of any accepted layout to the key names of ``model`` (an open_clip CLIP).

    EVA-release visual keys go through timm's ``checkpoint_filter_fn``; RoPE buffers are dropped;
    packed / split OpenAI q,k,v weights are converted to whatever ``model`` uses.
    """
    sd = _add_visual_prefix(sd)
    fmt = detect_format(sd)
    if fmt == 'eva_release':
        from timm.models.eva import checkpoint_filter_fn
        if not hasattr(model.visual, 'trunk'):
            raise CheckpointError('checkpoint is an EVA-CLIP (EVA02) file but the model is an OpenAI-style ViT; '
                                  'use an EVA02-* model_name')
        visual = {k: v for k, v in sd.items() if k.startswith('visual.')}
        if 'visual.pos_embed' not in visual:
            raise CheckpointError('EVA-CLIP checkpoint lacks visual.pos_embed')
        converted = checkpoint_filter_fn(visual, model.visual.trunk)
        out = {'visual.trunk.' + k: v for k, v in converted.items()}
        text_keys = {k for k in model.state_dict() if not k.startswith('visual.')}
        for k, v in sd.items():
            if k.startswith('visual.'):
                continue
            # EVA-CLIP stores the text tower under ``text.``; open_clip's CLIP (non custom-text) has it top-level.
            if k in text_keys:
                out[k] = v
            elif k.startswith('text.') and k[len('text.'):] in text_keys:
                out[k[len('text.'):]] = v
            else:
                out[k] = v
        sd = out
    elif fmt == 'openclip_eva' and not hasattr(model.visual, 'trunk'):
        raise CheckpointError('checkpoint is an EVA02 (timm) open_clip file but the model is an OpenAI-style ViT')
    elif fmt == 'openclip_vit' and hasattr(model.visual, 'trunk'):
        raise CheckpointError('checkpoint is an OpenAI-style ViT but the model is EVA02; use a ViT-* model_name')
    sd = {k: v for k, v in sd.items() if not any(h in k for h in ROPE_KEY_HINTS)}
    if fmt == 'openclip_vit':  # OpenAI archives also store these scalars (open_clip drops them as well)
        sd = {k: v for k, v in sd.items() if k not in ('input_resolution', 'context_length', 'vocab_size')}
    return _match_qkv_layout(sd, model.state_dict())


def _match_qkv_layout(sd, target):
    out = dict(sd)
    for k in list(sd):
        if k.endswith('attn.in_proj_weight'):
            base = k[:-len('in_proj_weight')]
            if k not in target and base + 'q_proj_weight' in target:
                q, kk, v = out.pop(k).chunk(3)
                out[base + 'q_proj_weight'], out[base + 'k_proj_weight'], out[base + 'v_proj_weight'] = q, kk, v
        elif k.endswith('attn.q_proj_weight'):
            base = k[:-len('q_proj_weight')]
            if k not in target and base + 'in_proj_weight' in target:
                out[base + 'in_proj_weight'] = torch.cat(
                    [out.pop(base + 'q_proj_weight'), out.pop(base + 'k_proj_weight'), out.pop(base + 'v_proj_weight')])
    return out


def load_into(module: nn.Module, sd: Dict[str, torch.Tensor], prefix: str, model_name: str,
              logger=None, strict_missing: bool = True) -> Tuple[list, list]:
    """Load the ``prefix``-ed entries of ``sd`` into ``module`` with shape checks and named key reports.

    Raises ``CheckpointError`` for a shape mismatch (different architecture / width) or, if ``strict_missing``,
    for weights missing from the checkpoint.  Unexpected keys (under ``prefix``) are reported as a warning.
    Returns (missing, unexpected) key names.
    """
    own = module.state_dict()
    picked = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not picked:
        raise CheckpointError(f'checkpoint has no "{prefix}*" weights for {model_name}')
    for k, v in picked.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(
                f'checkpoint does not fit {model_name}: "{prefix}{k}" has shape {tuple(v.shape)} but the model '
                f'expects {tuple(own[k].shape)} (wrong architecture or width: e.g. a ViT-L file for a ViT-B model)')
    missing = sorted(k for k in own if k not in picked and not any(h in k for h in ROPE_KEY_HINTS))
    unexpected = sorted(k for k in picked if k not in own)
    if missing and strict_missing:
        raise CheckpointError(f'checkpoint is missing {len(missing)} weights of {model_name}: '
                              f'{[prefix + k for k in missing[:12]]}{" ..." if len(missing) > 12 else ""}')
    if unexpected:
        msg = (f'{len(unexpected)} unexpected checkpoint keys ignored for {model_name}: '
               f'{[prefix + k for k in unexpected[:12]]}{" ..." if len(unexpected) > 12 else ""}')
        (logger.warning if logger else warnings.warn)(msg)
    module.load_state_dict({k: v for k, v in picked.items() if k in own}, strict=False)
    return missing, unexpected


def load_clip_state_dict(path: str, model: nn.Module) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read ``path`` and return (state dict in ``model``'s open_clip key names, declip_mm meta)."""
    sd, meta = read_checkpoint(path)
    return to_openclip_keys(sd, model), meta


def _plain(obj):
    """Nested dict / list / tuple (ConfigDict included) -> builtin containers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj] if isinstance(obj, list) else tuple(_plain(v) for v in obj)
    return obj


def export_backbone(backbone: nn.Module, path: str, meta: Optional[dict] = None) -> str:
    """Save a DeCLIPViT's visual tower as a standalone checkpoint that ``DeCLIPViT(checkpoint=path)`` loads.

    The file is ``{'state_dict': {'visual.*': tensor}, 'meta': {'declip_mm': {...}}}``; the meta records
    ``model_name``, ``model_overrides``, ``dense_mode`` and ``attn_scale`` so a mode mismatch can be warned about.
    """
    info = dict(model_name=backbone.model_name, model_overrides=backbone.model_overrides,
                dense_mode=backbone.dense_mode, attn_scale=backbone.attn_scale_name, family=backbone.family)
    info.update(meta or {})
    info = _plain(info)  # ConfigDicts from configs would not load under weights_only=True
    sd = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items() if k.startswith('visual.')}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    torch.save({'state_dict': sd, 'meta': {'declip_mm': info}}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return path


# ------------------------------------------------------------------------------------ EVA-CLIP release naming (out)
# open_clip / timm EVA02 names -> the EVA-CLIP release names the original EVA-CLIP / CLIPSelf / DeCLIP code loads
# (the inverse of timm's ``eva.checkpoint_filter_fn`` for EVA02-CLIP towers).
# One table for both directions: (open_clip/timm name, EVA-CLIP release name) templates whose ``{part}`` fields
# match the patterns of ``_EVA_PARTS`` and are carried over unchanged.
_EVA_NAMES = (
    ('visual.trunk.blocks.{n}.attn.q_proj.bias', 'visual.blocks.{n}.attn.q_bias'),
    ('visual.trunk.blocks.{n}.attn.v_proj.bias', 'visual.blocks.{n}.attn.v_bias'),
    ('visual.trunk.blocks.{n}.attn.norm.{wb}', 'visual.blocks.{n}.attn.inner_attn_ln.{wb}'),
    ('visual.trunk.blocks.{n}.mlp.fc1_g.{wb}', 'visual.blocks.{n}.mlp.w1.{wb}'),
    ('visual.trunk.blocks.{n}.mlp.fc1_x.{wb}', 'visual.blocks.{n}.mlp.w2.{wb}'),
    ('visual.trunk.blocks.{n}.mlp.fc2.{wb}', 'visual.blocks.{n}.mlp.w3.{wb}'),
    ('visual.trunk.blocks.{n}.mlp.norm.{wb}', 'visual.blocks.{n}.mlp.ffn_ln.{wb}'),
    ('visual.trunk.blocks.{n}.{same}', 'visual.blocks.{n}.{same}'),
    ('visual.trunk.{top}', 'visual.{top}'),
)
_EVA_PARTS = dict(
    n=r'\d+', wb=r'weight|bias',
    same=r'(?:norm1|norm2|attn\.proj)\.(?:weight|bias)|attn\.[qkv]_proj\.weight|gamma_[12]',
    top=r'patch_embed\.proj\.(?:weight|bias)|cls_token|pos_embed|(?:norm|head)\.(?:weight|bias)')


def _eva_rename(key: str, to_release: bool) -> Optional[str]:
    """``key`` renamed through ``_EVA_NAMES`` (timm -> release if ``to_release``, else back); None if no rule fits."""
    import re
    for timm_t, release_t in _EVA_NAMES:
        src, dst = (timm_t, release_t) if to_release else (release_t, timm_t)
        pattern = ''.join(f'(?P<{f}>{_EVA_PARTS[f]})' if i % 2 else re.escape(f)
                          for i, f in enumerate(re.split(r'\{(\w+)\}', src)))
        m = re.fullmatch(pattern, key)
        if m:
            return dst.format(**m.groupdict())
    return None


def eva_timm_name(key: str) -> Optional[str]:
    """open_clip/timm name of an EVA-CLIP release key (``visual.*``); None for RoPE buffers.  The same renaming
    as timm's ``eva.checkpoint_filter_fn`` (which needs the model), as explicit rules usable per key."""
    if 'rope.' in key:
        return None
    name = _eva_rename(key, to_release=False)
    if name is None:
        raise CheckpointError(f'no open_clip/timm EVA02 name for the EVA-CLIP key {key!r}')
    return name


def eva_release_name(key: str) -> Optional[str]:
    """EVA-CLIP release name of an open_clip/timm EVA02 key (``visual.trunk.*``); None for RoPE buffers (not
    weights).  Raises ``CheckpointError`` for a key the EVA-CLIP layout does not have."""
    if any(h in key for h in ROPE_KEY_HINTS):
        return None
    name = _eva_rename(key, to_release=True)
    if name is None:
        raise CheckpointError(f'no EVA-CLIP release name for {key!r}')
    return name


def eva_openclip_to_release(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``visual.trunk.*`` (open_clip/timm EVA02) -> ``visual.*`` in EVA-CLIP release naming (inverse of timm's
    ``eva.checkpoint_filter_fn``).  RoPE buffers are left out (see :func:`eva_release_rope_buffers`)."""
    out = {}
    for k, v in sd.items():
        name = eva_release_name(k)
        if name is not None:
            out[name] = v
    return out


def eva_release_rope_buffers(grid: int, head_dim: int, depth: int, pt_grid: int = 16
                             ) -> Dict[str, torch.Tensor]:
    """The ``freqs_cos`` / ``freqs_sin`` buffers EVA-CLIP's ``VisionRotaryEmbeddingFast`` stores for a tower with
    ``grid`` x ``grid`` patches at its native size (``intp_freq``; shared module, so once at ``visual.rope`` and
    once per block), each (grid*grid, head_dim).  Same float operations as EVA-CLIP (bit-identical buffers):
    per axis ``1 / theta ** (arange(0, d, 2) / d)`` with d = head_dim / 2, positions ``arange(n) / n * pt_grid``,
    each frequency repeated twice, row axis first."""
    theta = 10000.
    d = head_dim // 2
    bands = 1. / (theta ** (torch.arange(0, d, 2)[:d // 2].float() / d))
    f = (torch.arange(grid) / grid * pt_grid)[:, None] * bands[None]
    f = f.repeat_interleave(2, dim=-1)  # (grid, d)
    f = torch.cat([f[:, None, :].expand(grid, grid, d), f[None, :, :].expand(grid, grid, d)], dim=-1)
    f = f.reshape(grid * grid, head_dim)
    cos, sin = f.cos(), f.sin()
    out = {'visual.rope.freqs_cos': cos, 'visual.rope.freqs_sin': sin}
    for i in range(depth):
        out[f'visual.blocks.{i}.attn.rope.freqs_cos'] = cos.clone()
        out[f'visual.blocks.{i}.attn.rope.freqs_sin'] = sin.clone()
    return out
