"""Convert an original DeCLIP ``epoch_k.pt`` (or any EVA-CLIP / OpenAI CLIP file) into a declip_mm backbone export.

    python tools/model_converters/declip_to_declip_mm.py SRC DST --model EVA02-B-16 [--dense-mode csa]

``DeCLIPViT(checkpoint=SRC)`` already reads these files directly; the export is smaller (image tower only) and
records ``dense_mode`` so a later mode mismatch is reported.  Text-tower keys are listed as dropped (the text
encoder reads them from the CLIP file).  The inverse of ``declip_mm_to_declip.py``.
"""
import argparse
from collections import OrderedDict

from _common import ConversionError, Report, check_against, print_summary, save


def import_declip(sd, model_name: str, dense_mode: str = 'csa', model_overrides=None):
    """(DeCLIP / CLIP state dict) -> (declip_mm export dict, report)."""
    from declip_mm.models.backbones.checkpoint import to_openclip_keys
    from declip_mm.models.backbones.clip_builder import build_clip_model
    model = build_clip_model(model_name, model_overrides, with_text=False)
    converted = to_openclip_keys(sd, model)
    report = Report(f'DeCLIP -> declip_mm ({model_name})')
    visual = OrderedDict((k, v) for k, v in converted.items() if k.startswith('visual.'))
    from declip_mm.models.backbones.checkpoint import eva_release_name
    sources = {}
    for k2 in visual:  # which source key each of our weights came from
        src = eva_release_name(k2) if k2.startswith('visual.trunk.') else k2
        sources.setdefault(src, []).append(k2)
    for k in sd:
        if not k.startswith('visual.'):
            report.dropped[k] = 'text tower / logit_scale: the text encoder reads them from the CLIP file'
        elif 'rope' in k:
            report.dropped[k] = 'RoPE buffer (recomputed for the input grid)'
        elif k in sources:
            report.mapped[k] = sources[k]
        elif k.endswith('attn.in_proj_weight') or k.endswith(('q_proj_weight', 'k_proj_weight', 'v_proj_weight')):
            report.mapped[k] = ['(q/k/v layout of the model)']
        else:
            raise ConversionError(f'{report.title}: source key {k!r} has no place in the backbone')
    target = {k: tuple(v.shape) for k, v in model.state_dict().items() if 'rope' not in k}
    check_against(visual, target, report.title, strict_missing=True, report=report)
    meta = dict(model_name=model_name, model_overrides=model_overrides, dense_mode=dense_mode,
                attn_scale='none' if model_name.upper().startswith('EVA') else 'sqrt',
                family='eva' if model_name.upper().startswith('EVA') else 'openai')
    return {'state_dict': visual, 'meta': {'declip_mm': meta}}, report


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='DeCLIP epoch_k.pt / EVA-CLIP release / OpenAI CLIP file')
    p.add_argument('dst', help='output declip_mm backbone export (.pth)')
    p.add_argument('--model', required=True, help='open_clip model name, e.g. EVA02-B-16, EVA02-L-14-336')
    p.add_argument('--dense-mode', default='csa', help='the dense mode the backbone was distilled for')
    args = p.parse_args()
    from declip_mm.models.backbones.checkpoint import read_checkpoint
    sd, _ = read_checkpoint(args.src)
    out, report = import_declip(sd, args.model, args.dense_mode)
    save(out, args.dst)
    print_summary(report)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()
