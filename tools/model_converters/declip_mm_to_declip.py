"""Export a declip_mm backbone as an original-format DeCLIP ``epoch_k.pt`` (full CLIP, EVA-CLIP naming).

    python tools/model_converters/declip_mm_to_declip.py SRC CLIP DST [--prefix backbone.] [--alpha A | --raw]

SRC: a declip_mm backbone export (``work_dir/backbone_epoch_k.pth``) or any declip_mm checkpoint whose backbone sits
under ``--prefix`` (e.g. ``backbone.`` of an F-ViT / CAT-Seg run, ``student.`` of a distillation run); a local
path, an ``http(s)://`` URL or an ``hf-hub:`` file.

Distillation runs: ``backbone_epoch_k.pth`` and DeCLIP's own ``epoch_k.pt`` hold the weight-space ensemble
``alpha * student + (1 - alpha) * initial`` (alpha 0.7 in the B/16 configs, 0.95 in the L/14 ones), while the run
checkpoint ``epoch_k.pth`` keeps the raw student under ``student.*`` (unless ``DeCLIPEnsembleHook(in_checkpoint=True)``)
and the initial weights under ``teacher.*``.  With ``--prefix student.`` the converter therefore applies the
ensemble the run recorded (``meta['declip_ensemble']``), so the output equals what ``backbone_epoch_k.pth`` /
DeCLIP would hold; ``--raw`` exports the raw student, ``--alpha A`` another ensemble factor.
CLIP: the CLIP file the run started from (EVA-CLIP release ``EVA02_CLIP_B_psz16_s8B.pt`` or a DeCLIP
``epoch_k.pt``); its text tower and ``logit_scale`` are copied unchanged.
DST: ``{'name': ..., 'state_dict': {visual.*, text.*, logit_scale}}`` as DeCLIP's ``main.py`` saves it (without
``epoch`` / ``optimizer``, so the original code treats it as a model-only checkpoint), loadable by the original
DeCLIP, CLIPSelf F-ViT, CAT-Seg and OV-DQUO code.  EVA towers get the release names and the RoPE buffers the
original model stores; OpenAI towers keep OpenAI names with packed ``in_proj_weight``.
"""
import argparse
from collections import OrderedDict
from typing import Optional, Tuple

import torch

from _common import ConversionError, Report, check_against, load_source, print_summary, save, unwrap


def backbone_state_dict(obj, prefix: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """``visual.*`` tensors of a declip_mm checkpoint (an export, or ``prefix`` + ``visual.*`` of a model)."""
    sd = unwrap(obj)
    full = prefix + 'visual.'
    out = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(full))
    if not out:
        raise ConversionError(f'no "{full}*" weights in the source (keys start with {sorted(sd)[:3]}); '
                              'set --prefix to where the backbone sits (e.g. backbone. or student.)')
    return out


def student_of_run(obj, prefix: str, alpha: Optional[float] = None, raw: bool = False) -> Tuple[dict, str]:
    """A distillation run checkpoint (``prefix`` + ``visual.*`` next to ``teacher.visual.*``) -> (its state dict
    with the chosen student under ``prefix``, a sentence saying which).  Other checkpoints pass through unchanged.

    Raises ConversionError when the run recorded no ensemble and neither ``alpha`` nor ``raw`` says which to take.
    """
    from declip_mm.engine.ensemble import ensemble_checkpoint_state_dict
    sd = unwrap(obj)
    students = [k for k in sd if k.startswith(prefix + 'visual.')]
    if not prefix or prefix == 'teacher.' or not any('teacher.' + k[len(prefix):] in sd for k in students):
        if alpha is not None or raw:
            raise ConversionError('--alpha / --raw apply to distillation run checkpoints (student.* and teacher.*); '
                                  f'{"--prefix " + prefix if prefix else "this source"} is not one')
        return sd, ''
    meta = obj.get('meta') if isinstance(obj, dict) else None
    record = meta.get('declip_ensemble') if isinstance(meta, dict) else None
    stored = record.get('student') if isinstance(record, dict) else None
    if raw:
        if stored == 'ensembled':
            raise ConversionError('--raw: this run checkpoint stores the ensembled student '
                                  '(DeCLIPEnsembleHook(in_checkpoint=True)); the raw student is not in it')
        return sd, f'{prefix}*: the raw student (not the alpha ensemble that backbone_epoch_k.pth holds)'
    if alpha is None:
        if stored is None:
            raise ConversionError(
                f'{prefix}* of a distillation run checkpoint is the raw student, while backbone_epoch_k.pth and '
                "DeCLIP's epoch_k.pt hold the ensemble alpha * student + (1 - alpha) * initial (alpha 0.7 in the "
                'B/16 configs, 0.95 in the L/14 ones), and this file does not record its alpha: pass --alpha A for '
                'the ensemble (as DeCLIP saves it) or --raw for the raw student, or convert backbone_epoch_k.pth')
        if stored == 'ensembled' or record['alpha'] >= 1:
            return sd, f'{prefix}*: as stored ({stored}, alpha {record["alpha"]:g}; what backbone_epoch_k.pth holds)'
        alpha = float(record['alpha'])
    elif stored == 'ensembled':
        raise ConversionError(f'--alpha: this run checkpoint already stores the ensembled student (alpha '
                              f'{record["alpha"]:g}); convert it without --alpha')
    out = ensemble_checkpoint_state_dict(sd, alpha, student_prefix=prefix, teacher_prefix='teacher.')
    return out, (f'{prefix}*: the ensemble {alpha:g} * student + {1 - alpha:g} * initial (teacher.*), as '
                 "backbone_epoch_k.pth and DeCLIP's epoch_k.pt hold it; --raw for the raw student")


def export_declip(visual_sd, clip_sd, name: str = 'declip_mm export'):
    """(our ``visual.*`` weights, the original CLIP's state dict) -> (DeCLIP checkpoint dict, reports)."""
    from declip_mm.models.backbones.checkpoint import detect_format, eva_release_name, eva_release_rope_buffers
    vis_report, txt_report = Report('visual (declip_mm -> DeCLIP)'), Report('text tower + logit_scale (from CLIP)')
    clip_fmt = detect_format(clip_sd)
    visual = OrderedDict()
    if any(k.startswith('visual.trunk.') for k in visual_sd):
        if clip_fmt != 'eva_release':
            raise ConversionError('an EVA backbone needs an EVA-CLIP release / DeCLIP CLIP file for the text tower '
                                  f'(got a {clip_fmt} file)')
        for k, v in visual_sd.items():
            dst = eva_release_name(k)
            if dst is None:
                vis_report.dropped[k] = 'RoPE buffer of timm (recomputed below in EVA-CLIP layout)'
                continue
            visual[dst] = v
            vis_report.mapped[k] = [dst]
        depth = 1 + max(int(k.split('.')[2]) for k in visual if k.startswith('visual.blocks.'))
        grid = int(round((visual['visual.pos_embed'].shape[1] - 1) ** 0.5))
        ref = clip_sd.get('visual.rope.freqs_cos')
        head_dim = ref.shape[1] if ref is not None else 64  # EVA02-CLIP B and L: head width 64
        for k, v in eva_release_rope_buffers(grid, head_dim, depth).items():
            visual[k] = v
            vis_report.added[k] = 'RoPE buffer of EVA-CLIP (VisionRotaryEmbeddingFast, intp_freq)'
    else:
        if clip_fmt != 'openclip_vit':
            raise ConversionError(f'an OpenAI-style backbone needs an OpenAI CLIP file (got a {clip_fmt} file)')
        for k, v in visual_sd.items():
            base = k.rsplit('.', 1)[0] + '.'
            if k.endswith('attn.q_proj_weight'):  # split_qkv backbones -> OpenAI's packed in_proj_weight
                visual[base + 'in_proj_weight'] = torch.cat(
                    [v, visual_sd[base + 'k_proj_weight'], visual_sd[base + 'v_proj_weight']])
            if k.endswith(('attn.q_proj_weight', 'attn.k_proj_weight', 'attn.v_proj_weight')):
                vis_report.mapped[k] = [base + 'in_proj_weight']
            else:
                visual[k] = v
                vis_report.mapped[k] = [k]
    clip_visual = {k: tuple(v.shape) for k, v in clip_sd.items() if k.startswith('visual.')}
    check_against(visual, clip_visual, vis_report.title, strict_missing=True, report=vis_report)
    out = OrderedDict()
    for k, v in clip_sd.items():  # the CLIP file's key order
        if k.startswith('visual.'):
            out[k] = visual[k].contiguous()  # our dtype (fp32 after training), not the CLIP file's fp16
        else:
            out[k] = v
            txt_report.mapped[k] = [k]
    return {'name': name, 'state_dict': out}, (vis_report, txt_report)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='declip_mm backbone export or model checkpoint')
    p.add_argument('clip', help='the original CLIP file (EVA-CLIP release / DeCLIP epoch_k.pt / OpenAI state dict)')
    p.add_argument('dst', help='output epoch_k.pt')
    p.add_argument('--prefix', default='', help='where the backbone sits in SRC (e.g. backbone. / student.)')
    which = p.add_mutually_exclusive_group()
    which.add_argument('--alpha', type=float, default=None,
                       help='distillation run checkpoints: export alpha * student + (1 - alpha) * initial (default: '
                            'the alpha the run recorded, as in backbone_epoch_k.pth)')
    which.add_argument('--raw', action='store_true', help='distillation run checkpoints: export the raw student')
    args = p.parse_args()
    from declip_mm.models.backbones.checkpoint import read_checkpoint
    clip_sd, _ = read_checkpoint(args.clip)
    sd, note = student_of_run(load_source(args.src), args.prefix, args.alpha, args.raw)
    ckpt, reports = export_declip(backbone_state_dict(sd, args.prefix), clip_sd)
    save(ckpt, args.dst)
    if note:
        print(note)
    print_summary(*reports)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()
