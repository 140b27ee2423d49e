"""Convert an OV-DQUO checkpoint (``xiaomoguhz/OV-DQUO`` release / training output) to declip_mm's ``OVDQUO``.

    python tools/model_converters/ovdquo_to_declip_mm.py SRC DST [--ema] [--config CONFIG]
    python tools/model_converters/ovdquo_to_declip_mm.py SRC DST --reverse [--head-dim 64] [--text-tower RN50.pt]

e.g. the released ``OVDQUO_ViT-B/16_LVIS`` file -> ``ovdquo_vitb16_lvis_declip-mm.pth``, then
``python tools/test.py configs/ovdquo/ovdquo_eva02-b16-clipself_8xb4-35e_ov-lvis-1024.py DST``.

The source is what OV-DQUO's ``main.py`` saves: a dict with ``model`` (the model's state dict), ``ema_model`` (its
EMA model's, when trained with ``use_ema``, as all released configs are), ``optimizer``, ``lr_scheduler``, ``epoch``
and ``args`` (an ``argparse.Namespace``, the one class allowed beyond the project's weights-only allow-list for
this format); a bare state dict is accepted too.  OV-DQUO evaluates (and published) the EMA weights: ``--ema``
takes ``ema_model``; without it ``model`` (the raw weights) is converted.  With ``--config`` the converted weights
are checked against the model the config builds (every weight present, every shape equal).

Key mapping (OV-DQUO -> declip_mm, L = decoder layers):
    backbone.0.visual.*                              -> backbone.visual.trunk.*  (EVA-CLIP -> timm names)
    backbone.0.interpolate1.0.*                      -> neck.necks.0.branches.0.*   (ViTPyramidNeck ConvT)
    input_proj.{i}.0.* / input_proj.{i}.1.*          -> neck.necks.1.convs.{i}.conv.* / .gn.*  (ChannelMapper)
    transformer.level_embed                          -> level_embed
    transformer.encoder.layers.{i}.self_attn.*       -> encoder.layers.{i}.self_attn.*
    transformer.encoder.layers.{i}.linear1/linear2/norm1/norm2
                                                     -> encoder.layers.{i}.ffn.layers.0.0/ffn.layers.1/norms.0/norms.1
    transformer.decoder.layers.{i}.self_attn.*       -> decoder.layers.{i}.self_attn.attn.*
    transformer.decoder.layers.{i}.cross_attn.*      -> decoder.layers.{i}.cross_attn.*
    transformer.decoder.layers.{i}.norm2/norm1/norm3 -> decoder.layers.{i}.norms.0/norms.1/norms.2
    transformer.decoder.layers.{i}.linear1/linear2   -> decoder.layers.{i}.ffn.layers.0.0/ffn.layers.1
    transformer.decoder.ref_point_head.*, .norm.*    -> decoder.ref_point_head.*, decoder.norm.*
    transformer.tgt_embed                            -> query_embedding
    transformer.enc_output / enc_output_norm         -> memory_trans_fc / memory_trans_norm
    transformer.text_proj.*                          -> text_proj.*
    label_enc                                        -> dn_query_generator.label_embedding
    class_embed.{l} (one Linear shared by the L layers) -> bbox_head.cls_branches.{l}
    bbox_embed.{l}.layers.{0,1,2}                    -> bbox_head.reg_branches.{l}.{0,2,4}
    transformer.enc_out_class_embed / enc_out_bbox_embed.layers.{0,1,2}
                                                     -> bbox_head.cls_branches.{L} / bbox_head.reg_branches.{L}.{0,2,4}
Dropped: the EVA RoPE tables (``rope.freqs_cos/sin``: recomputed for the input grid); ``transformer.decoder.
class_embed.*`` / ``transformer.decoder.bbox_embed.*``, other names of ``class_embed.*`` / ``bbox_embed.*`` (checked
equal; so are the L entries of the shared ``class_embed``).  Text embeddings are not in the file (the config's).

ResNet models (OV-COCO RN50 / RN50x4, ``CLIPResNet`` + ``ChannelMapper`` neck), recognised by ``backbone.0.body.*``:
    backbone.0.body.<ModifiedResNet key> (stem, layer1-layer4) -> backbone.visual.<key>
    backbone.0.attn_pool.*                           -> backbone.visual.attnpool.*  (region prompt included)
    input_proj.{i}.0.* / .1.*, i < n (1x1 convs on C3, C4) -> neck.convs.{i}.conv.* / .gn.*
    input_proj.{n+j}.0.* / .1.* (conv3x3 s2 on raw C4)     -> neck.extra_convs.{j}.conv.* / .gn.*
    the transformer, heads, text projection and label table as above.
Dropped: ``backbone.0.layer4.*`` (the same module as ``backbone.0.body.layer4``: checked equal);
``classifier.*`` (the frozen CLIP text tower: OpenAI's text weights, unchanged by training; the text embeddings come
from the config's file, made with the same tower by ``tools/gen_text_embeddings.py``); ``*.num_batches_tracked``
(a frozen BN counter: the original's frozen BN has none, neither has ours).

``--reverse`` writes a declip_mm OVDQUO checkpoint in OV-DQUO's layout (``model`` and ``ema_model``, loadable
strictly by OV-DQUO's ``main.py --resume``): every alias written again and the EVA RoPE tables recomputed
(``--head-dim``: the EVA attention head width, 64 for EVA02-B/16 and L/14).  A ResNet model gets
``backbone.0.layer4.*`` again and ``classifier.*`` from ``--text-tower`` (OpenAI's ``RN50.pt`` / ``RN50x4.pt`` or an
open_clip state dict: the original keeps that text tower in its state dict; without the option the file has no
``classifier.*`` and the original's strict load would stop there, which the converter says).  A declip_mm training
checkpoint made with the EMA configs holds the EMA weights in ``state_dict`` (-> ``ema_model``) and the raw ones in
``ema_state_dict`` (-> ``model``).
"""
import argparse
import re
from collections import OrderedDict

import torch

from _common import ConversionError, convert_keys, eva_rename_rule, load_source, print_summary, save, shapes_of

_visual_to_ours = eva_rename_rule('backbone.', 'visual.', to_release=False)
_visual_to_theirs = eva_rename_rule('backbone.0.', 'visual.trunk.', to_release=True)

ENC = r'transformer\.encoder\.layers\.(\d+)\.'
DEC = r'transformer\.decoder\.layers\.(\d+)\.'
WB = r'(weight|bias)'


def _mlp(prefix_out):
    """``*.layers.{j}.{w,b}`` (OV-DQUO MLP) -> ``{prefix_out}.{2j}.{w,b}`` (mmdet reg branch: Linear, ReLU, ...)."""
    def rule(m, v):
        return [(prefix_out.format(*m.groups()[:-2]) + f'.{2 * int(m.group(m.lastindex - 1))}.{m.group(m.lastindex)}',
                 v)]
    return rule


def rules(num_dec: int):
    """Forward rules (OV-DQUO ViT -> declip_mm); ``num_dec`` = decoder layers (index of the encoder heads)."""
    return (
        (r'backbone\.0\.visual\.(.*)', _visual_to_ours),
        (r'backbone\.0\.interpolate1\.0\.' + WB, r'neck.necks.0.branches.0.\1'),
        (r'input_proj\.(\d+)\.0\.' + WB, r'neck.necks.1.convs.\1.conv.\2'),
        (r'input_proj\.(\d+)\.1\.' + WB, r'neck.necks.1.convs.\1.gn.\2'),
        (r'transformer\.level_embed', r'level_embed'),
        (ENC + r'self_attn\.((?:sampling_offsets|attention_weights|value_proj|output_proj)\.(?:weight|bias))',
         r'encoder.layers.\1.self_attn.\2'),
        (ENC + r'linear1\.' + WB, r'encoder.layers.\1.ffn.layers.0.0.\2'),
        (ENC + r'linear2\.' + WB, r'encoder.layers.\1.ffn.layers.1.\2'),
        (ENC + r'norm1\.' + WB, r'encoder.layers.\1.norms.0.\2'),
        (ENC + r'norm2\.' + WB, r'encoder.layers.\1.norms.1.\2'),
        (DEC + r'self_attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)',
         r'decoder.layers.\1.self_attn.attn.\2'),
        (DEC + r'cross_attn\.((?:sampling_offsets|attention_weights|value_proj|output_proj)\.(?:weight|bias))',
         r'decoder.layers.\1.cross_attn.\2'),
        (DEC + r'norm2\.' + WB, r'decoder.layers.\1.norms.0.\2'),
        (DEC + r'norm1\.' + WB, r'decoder.layers.\1.norms.1.\2'),
        (DEC + r'norm3\.' + WB, r'decoder.layers.\1.norms.2.\2'),
        (DEC + r'linear1\.' + WB, r'decoder.layers.\1.ffn.layers.0.0.\2'),
        (DEC + r'linear2\.' + WB, r'decoder.layers.\1.ffn.layers.1.\2'),
        (r'transformer\.decoder\.ref_point_head\.layers\.(\d)\.' + WB, r'decoder.ref_point_head.layers.\1.\2'),
        (r'transformer\.decoder\.norm\.' + WB, r'decoder.norm.\1'),
        (r'transformer\.tgt_embed\.weight', r'query_embedding.weight'),
        (r'transformer\.enc_output\.' + WB, r'memory_trans_fc.\1'),
        (r'transformer\.enc_output_norm\.' + WB, r'memory_trans_norm.\1'),
        (r'transformer\.text_proj\.layers\.(\d)\.' + WB, r'text_proj.layers.\1.\2'),
        (r'label_enc\.weight', r'dn_query_generator.label_embedding.weight'),
        (r'class_embed\.(\d+)\.' + WB, r'bbox_head.cls_branches.\1.\2'),
        (r'bbox_embed\.(\d+)\.layers\.([012])\.' + WB, _mlp('bbox_head.reg_branches.{}')),
        (r'transformer\.enc_out_class_embed\.' + WB, rf'bbox_head.cls_branches.{num_dec}.\1'),
        (r'transformer\.enc_out_bbox_embed\.layers\.([012])\.' + WB, _mlp(f'bbox_head.reg_branches.{num_dec}')),
    )


DROPS = (
    (r'backbone\.0\.visual\.(?:.*\.)?rope\.freqs_(?:cos|sin)', 'EVA RoPE table (recomputed for the input grid)'),
    (r'transformer\.decoder\.(?:class_embed|bbox_embed)\..*',
     'another name of class_embed.* / bbox_embed.* (checked equal)'),
)
TEXT_TOWER = (r'(?:transformer\.resblocks\.\d+\..*|token_embedding\.weight|positional_embedding|ln_final\..*|'
              r'text_projection)')  # an OpenAI CLIP text tower's keys
RESNET_DROPS = (
    (r'backbone\.0\.layer4\..*', 'the same module as backbone.0.body.layer4 (checked equal)'),
    (r'classifier\.' + TEXT_TOWER, 'frozen CLIP text tower (the text embeddings come from the config\'s file)'),
    (r'backbone\.0\.(?:body|attn_pool)\..*num_batches_tracked', 'frozen BN counter (no such buffer in ours)'),
)
RESNET_HINTS = ('backbone.0.body.', 'backbone.0.attn_pool.')


def is_resnet(sd, ours: bool = False) -> bool:
    """An OV-DQUO ResNet model (OV-COCO RN50 / RN50x4) rather than the ViT one."""
    if ours:
        return any(k.startswith('backbone.visual.attnpool.') for k in sd)
    return any(k.startswith(RESNET_HINTS) for k in sd)


def num_input_levels(sd, pattern=r'input_proj\.(\d+)\.0\.weight') -> int:
    """Backbone levels of the input projection: the 1x1 convs (the extra levels are 3x3)."""
    n = sum(1 for k, v in sd.items() if re.fullmatch(pattern, k) and v.dim() == 4 and v.shape[-1] == 1)
    if not n:
        raise ConversionError('no 1x1 input projection found (keys input_proj.{i}.0.weight): not an OV-DQUO '
                              'checkpoint?')
    return n


def resnet_rules(n_in: int):
    """OV-DQUO ResNet backbone + input projection -> declip_mm (CLIPResNet + ChannelMapper)."""
    def proj(m, v):
        i, part, wb = int(m.group(1)), {'0': 'conv', '1': 'gn'}[m.group(2)], m.group(3)
        where = f'convs.{i}' if i < n_in else f'extra_convs.{i - n_in}'
        return [(f'neck.{where}.{part}.{wb}', v)]
    return (
        (r'backbone\.0\.body\.((?:conv[123]\.weight|bn[123]\.|layer[1-4]\.\d+\.).*)', r'backbone.visual.\1'),
        (r'backbone\.0\.attn_pool\.(positional_embedding|[qkvc]_proj\.(?:weight|bias))',
         r'backbone.visual.attnpool.\1'),
        (r'input_proj\.(\d+)\.([01])\.' + WB, proj),
    )


def resnet_reverse_rules(n_in: int):
    def body(m, v):
        out = [(f'backbone.0.body.{m.group(1)}', v)]
        if m.group(1).startswith('layer4.'):
            out.append((f'backbone.0.{m.group(1)}', v))  # the original's second name of layer4
        return out
    return (
        (r'backbone\.visual\.attnpool\.(.*)', r'backbone.0.attn_pool.\1'),
        (r'backbone\.visual\.(.*)', body),
        (r'neck\.convs\.(\d+)\.conv\.' + WB, r'input_proj.\1.0.\2'),
        (r'neck\.convs\.(\d+)\.gn\.' + WB, r'input_proj.\1.1.\2'),
        (r'neck\.extra_convs\.(\d+)\.(conv|gn)\.' + WB,
         lambda m, v: [(f'input_proj.{n_in + int(m.group(1))}.{0 if m.group(2) == "conv" else 1}.{m.group(3)}', v)]),
    )


def _inverse_mlp(prefix_out):
    def rule(m, v):
        j = int(m.group(m.lastindex - 1))
        if j % 2:
            return None
        return [(prefix_out.format(*m.groups()[:-2]) + f'.layers.{j // 2}.{m.group(m.lastindex)}', v)]
    return rule


def reverse_rules(num_dec: int):
    """declip_mm OVDQUO -> OV-DQUO names (aliases are added afterwards)."""
    dec_idx = '|'.join(str(i) for i in range(num_dec))
    return (
        (r'backbone\.visual\.trunk\.(.*)', _visual_to_theirs),
        (r'neck\.necks\.0\.branches\.0\.' + WB, r'backbone.0.interpolate1.0.\1'),
        (r'neck\.necks\.1\.convs\.(\d+)\.conv\.' + WB, r'input_proj.\1.0.\2'),
        (r'neck\.necks\.1\.convs\.(\d+)\.gn\.' + WB, r'input_proj.\1.1.\2'),
        (r'level_embed', r'transformer.level_embed'),
        (r'encoder\.layers\.(\d+)\.self_attn\.(.*)', r'transformer.encoder.layers.\1.self_attn.\2'),
        (r'encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.' + WB, r'transformer.encoder.layers.\1.linear1.\2'),
        (r'encoder\.layers\.(\d+)\.ffn\.layers\.1\.' + WB, r'transformer.encoder.layers.\1.linear2.\2'),
        (r'encoder\.layers\.(\d+)\.norms\.0\.' + WB, r'transformer.encoder.layers.\1.norm1.\2'),
        (r'encoder\.layers\.(\d+)\.norms\.1\.' + WB, r'transformer.encoder.layers.\1.norm2.\2'),
        (r'decoder\.layers\.(\d+)\.self_attn\.attn\.(.*)', r'transformer.decoder.layers.\1.self_attn.\2'),
        (r'decoder\.layers\.(\d+)\.cross_attn\.(.*)', r'transformer.decoder.layers.\1.cross_attn.\2'),
        (r'decoder\.layers\.(\d+)\.norms\.0\.' + WB, r'transformer.decoder.layers.\1.norm2.\2'),
        (r'decoder\.layers\.(\d+)\.norms\.1\.' + WB, r'transformer.decoder.layers.\1.norm1.\2'),
        (r'decoder\.layers\.(\d+)\.norms\.2\.' + WB, r'transformer.decoder.layers.\1.norm3.\2'),
        (r'decoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.' + WB, r'transformer.decoder.layers.\1.linear1.\2'),
        (r'decoder\.layers\.(\d+)\.ffn\.layers\.1\.' + WB, r'transformer.decoder.layers.\1.linear2.\2'),
        (r'decoder\.ref_point_head\.(.*)', r'transformer.decoder.ref_point_head.\1'),
        (r'decoder\.norm\.' + WB, r'transformer.decoder.norm.\1'),
        (r'query_embedding\.weight', r'transformer.tgt_embed.weight'),
        (r'memory_trans_fc\.' + WB, r'transformer.enc_output.\1'),
        (r'memory_trans_norm\.' + WB, r'transformer.enc_output_norm.\1'),
        (r'text_proj\.(.*)', r'transformer.text_proj.\1'),
        (r'dn_query_generator\.label_embedding\.weight', r'label_enc.weight'),
        (rf'bbox_head\.cls_branches\.({dec_idx})\.' + WB, r'class_embed.\1.\2'),
        (rf'bbox_head\.reg_branches\.({dec_idx})\.(\d)\.' + WB, _inverse_mlp('bbox_embed.{}')),
        (rf'bbox_head\.cls_branches\.{num_dec}\.' + WB, r'transformer.enc_out_class_embed.\1'),
        (rf'bbox_head\.reg_branches\.{num_dec}\.(\d)\.' + WB, _inverse_mlp('transformer.enc_out_bbox_embed')),
    )


def num_decoder_layers(sd, pattern=r'bbox_embed\.(\d+)\.') -> int:
    idx = {int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m}
    if not idx:
        raise ConversionError('no decoder box heads found (keys bbox_embed.{l}.*): not an OV-DQUO checkpoint?')
    return max(idx) + 1


def _check_shared(sd, num_dec):
    """The original shares one class Linear across the decoder layers and lists class_embed / bbox_embed also under
    transformer.decoder: every such name must hold the same values."""
    for k, v in sd.items():
        m = re.fullmatch(r'class_embed\.(\d+)\.' + WB, k)
        if m and int(m.group(1)) > 0:
            ref = sd.get(f'class_embed.0.{m.group(2)}')
            if ref is None or not torch.equal(ref, v):
                raise ConversionError(f'{k} differs from class_embed.0.{m.group(2)}: OV-DQUO shares one objectness '
                                      'Linear across the decoder layers (dec_pred_class_embed_share=True)')
        if k.startswith('transformer.decoder.class_embed.') or k.startswith('transformer.decoder.bbox_embed.'):
            own = k[len('transformer.decoder.'):]
            if own not in sd or not torch.equal(sd[own], v):
                raise ConversionError(f'{k} differs from {own} (they are one module in OV-DQUO)')


def _check_layer4(sd):
    """The original lists the ResNet's layer4 twice (``body.layer4`` and ``layer4``): the same tensors."""
    for k, v in sd.items():
        if k.startswith('backbone.0.layer4.') and not k.endswith('num_batches_tracked'):
            own = 'backbone.0.body.' + k[len('backbone.0.'):]
            if own not in sd or not torch.equal(sd[own], v):
                raise ConversionError(f'{k} differs from {own} (they are one module in OV-DQUO)')


def convert(sd, target_shapes=None):
    """OV-DQUO state dict (ViT or ResNet model) -> (declip_mm OVDQUO state dict, report)."""
    num_dec = num_decoder_layers(sd)
    _check_shared(sd, num_dec)
    if is_resnet(sd):
        _check_layer4(sd)
        vit_rules = [r for r in rules(num_dec) if not r[0].startswith(('backbone', 'input_proj'))]
        return convert_keys(sd, tuple(resnet_rules(num_input_levels(sd))) + tuple(vit_rules), DROPS + RESNET_DROPS,
                            'OV-DQUO (ResNet) -> declip_mm OVDQUO', target_shapes)
    return convert_keys(sd, rules(num_dec), DROPS, 'OV-DQUO -> declip_mm OVDQUO', target_shapes)


def revert(sd, head_dim: int = 64, text_tower=None):
    """declip_mm OVDQUO state dict -> (OV-DQUO layout with every alias and the EVA RoPE tables, report).

    ``text_tower``: for a ResNet model, the CLIP text tower's state dict (OpenAI names, ``visual.*`` ignored) written
    as ``classifier.*``."""
    from declip_mm.models.backbones.checkpoint import eva_release_rope_buffers
    num_dec = num_decoder_layers(sd, r'bbox_head\.reg_branches\.(\d+)\.') - 1
    drops = ((r'backbone\.visual\.trunk\.(?:.*\.)?rope\..*', 'timm RoPE buffer'), )
    if is_resnet(sd, ours=True):
        n_in = sum(1 for k in sd if re.fullmatch(r'neck\.convs\.\d+\.conv\.weight', k))
        base = [r for r in reverse_rules(num_dec) if not r[0].startswith(('backbone', 'neck'))]
        out, report = convert_keys(sd, tuple(resnet_reverse_rules(n_in)) + tuple(base),
                                   drops + ((r'backbone\.visual\..*num_batches_tracked', 'frozen BN counter'), ),
                                   'declip_mm OVDQUO (ResNet) -> OV-DQUO')
        if text_tower is not None:
            text = {k: v for k, v in text_tower.items() if re.fullmatch(TEXT_TOWER, k)}
            if not any(k.startswith('transformer.resblocks.') for k in text) or 'text_projection' not in text:
                raise ConversionError('--text-tower: no CLIP text tower in the file (transformer.resblocks.*, '
                                      'text_projection)')
            for k, v in text.items():
                out['classifier.' + k] = v
                report.added['classifier.' + k] = 'CLIP text tower (--text-tower)'
        else:
            print('note: no --text-tower: the file has no classifier.* (the frozen CLIP text tower), which '
                  'OV-DQUO\'s strict --resume load expects; pass --text-tower RN50.pt (the CLIP the model uses)')
    else:
        out, report = convert_keys(sd, reverse_rules(num_dec), drops, 'declip_mm OVDQUO -> OV-DQUO')
    for k in list(out):
        if re.match(r'(?:class_embed|bbox_embed)\.', k):
            out['transformer.decoder.' + k] = out[k]
            report.added['transformer.decoder.' + k] = f'other name of {k}'
    pos = out.get('backbone.0.visual.pos_embed')
    if pos is not None:
        depth = 1 + max(int(k.split('.')[4]) for k in out if k.startswith('backbone.0.visual.blocks.'))
        grid = int(round((pos.shape[1] - 1) ** 0.5))
        for k, v in eva_release_rope_buffers(grid, head_dim, depth).items():
            out['backbone.0.' + k] = v
            report.added['backbone.0.' + k] = 'EVA-CLIP RoPE table (VisionRotaryEmbeddingFast, persistent there)'
    return out, report


def select_weights(obj, ema: bool, path: str = 'the checkpoint'):
    """The state dict to convert from an OV-DQUO checkpoint dict (``model`` / ``ema_model``) or a bare state dict;
    returns (state dict, which entry)."""
    from _common import unwrap
    if isinstance(obj, dict) and ('model' in obj or 'ema_model' in obj):
        key = 'ema_model' if ema else 'model'
        if key not in obj:
            raise ConversionError(f'{path} has no {key!r} entry (entries: {sorted(obj)}); '
                                  + ('drop --ema to convert the raw weights' if ema else 'use --ema'))
        if not ema and 'ema_model' in obj:
            print(f'note: {path} also holds the EMA weights (ema_model), which OV-DQUO evaluates and published; '
                  'pass --ema to convert those')
        return unwrap(obj[key]), key
    return unwrap(obj), 'state dict'


def build_target_shapes(config: str):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import declip_mm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(config)
    cfg.model.backbone.checkpoint = None
    cfg.model.backbone.pop('region_prompt', None)  # CLIPResNet
    cfg.model.text_embeddings = None  # shapes only
    cfg.model.pop('wildcard_embeddings', None)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return shapes_of(MODELS.build(cfg.model))


def main(argv=None):
    import argparse as _argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--ema', action='store_true',
                   help='convert the EMA weights (ema_model: what OV-DQUO evaluates and published)')
    p.add_argument('--config', help='declip_mm config of this checkpoint: check every weight and shape')
    p.add_argument('--reverse', action='store_true', help='declip_mm OVDQUO checkpoint -> OV-DQUO layout')
    p.add_argument('--head-dim', type=int, default=64,
                   help='--reverse: EVA attention head width for the RoPE tables (64 for EVA02-B/16 and L/14)')
    p.add_argument('--text-tower',
                   help='--reverse, ResNet models: the CLIP file (OpenAI RN50.pt / RN50x4.pt) whose text tower the '
                        'original keeps as classifier.*')
    args = p.parse_args(argv)
    obj = load_source(args.src, extra_globals=[_argparse.Namespace])  # OV-DQUO saves its args Namespace
    if args.reverse:
        from _common import unwrap
        text = None
        if args.text_tower:
            from declip_mm.models.backbones.checkpoint import read_checkpoint
            text = read_checkpoint(args.text_tower)[0]
        ema_sd = unwrap(obj)
        raw = obj.get('ema_state_dict') if isinstance(obj, dict) else None
        raw_sd = OrderedDict((k[len('module.'):], v) for k, v in raw.items() if k.startswith('module.')) \
            if raw else ema_sd
        ema_out, report = revert(ema_sd, args.head_dim, text)
        raw_out = revert(raw_sd, args.head_dim, text)[0] if raw else ema_out
        save({'model': raw_out, 'ema_model': ema_out}, args.dst)
    else:
        sd, which = select_weights(obj, args.ema, args.src)
        shapes = build_target_shapes(args.config) if args.config else None
        out, report = convert(sd, shapes)
        meta = {'converted_from': 'OV-DQUO', 'weights': which}
        if isinstance(obj, dict) and isinstance(obj.get('epoch'), int):
            meta['epoch'] = obj['epoch']
        save({'state_dict': out, 'meta': meta}, args.dst)
    print_summary(report)
    print(f'saved {args.dst}')
    return args.dst


if __name__ == '__main__':
    main()
