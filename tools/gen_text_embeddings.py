r"""Generate CLIP text embeddings of class names for F-ViT heads and OV-DQUO (ViLD's 63 templates + "background").

    # class names from an annotation file (COCO / LVIS json: every category, sorted by id), a preset
    # (ov_coco, coco, lvis_v1, objects365v1, objects365v2), a .txt file (one name a line) or a comma list
    python tools/gen_text_embeddings.py --model EVA02-B-16 --checkpoint checkpoints/EVA02_CLIP_B_psz16_s8B.pt \
        --classes data/coco/annotations/instances_val2017.json --out data/text/coco_eva02_b16.pt [--npy X.npy]

``--extra-classes object`` adds OV-DQUO's wildcard row to any class list (OV-DQUO configs need it).
Writes a ``.pt`` dict name -> (D,) float32 vector (all classes + 'background'); ``--npy`` also writes the
(K+1, D) array in class order with background last and its row names in ``<stem>.names.txt`` (required to load
it).  Use the text tower of the same CLIP the backbone comes from
(neither CLIPSelf nor DeCLIP trains it; DeCLIP exports hold only the visual tower, so pass the original CLIP file).
``--tiny eva|openai`` builds the tiny random test CLIP (embedded default / tests; ``--seed`` fixes it).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--classes', required=True, help='annotation json | preset | names .txt | comma-separated names')
    p.add_argument('--extra-classes', default='',
                   help='comma-separated names appended to --classes (e.g. "object", the wildcard row of OV-DQUO)')
    p.add_argument('--out', required=True, help='output .pt file')
    p.add_argument('--npy', default=None,
                   help='also write a (K+1, D) .npy array in class order (background last) + its .names.txt')
    p.add_argument('--model', default='EVA02-B-16', help='open_clip model name')
    p.add_argument('--checkpoint', default=None, help='CLIP checkpoint holding the text tower')
    p.add_argument('--model-overrides', default=None, help='JSON dict deep-merged into the open_clip config')
    p.add_argument('--tiny', choices=['eva', 'openai'], default=None, help='tiny random CLIP (tests)')
    p.add_argument('--templates', choices=['vild', 'imagenet', 'single'], default='vild')
    p.add_argument('--no-this-is', action='store_true', help='do not apply ViLD\'s "This is" prefix rule')
    p.add_argument('--context-length', type=int, default=None,
                   help='tokens per sentence (truncated, EOT kept); OV-DQUO/CORA ResNet text: 15 (default: 77)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from declip_mm.datasets.ov_detection import resolve_class_names
    from declip_mm.models.backbones import tiny_clip_overrides
    from declip_mm.models.roi_heads.text_classifier import BACKGROUND, generate_text_embeddings, npy_names_path
    from declip_mm.models.text import CLIPTextEncoder
    from declip_mm.models.text.templates import IMAGENET_TEMPLATES, SINGLE_TEMPLATE, VILD_TEMPLATES

    names = class_names_from(args.classes, resolve_class_names)
    names += [n.strip() for n in args.extra_classes.split(',') if n.strip() and n.strip() not in names]
    overrides = json.loads(args.model_overrides) if args.model_overrides else None
    if args.tiny:
        overrides = tiny_clip_overrides(args.tiny)
    elif args.checkpoint is None:
        print('WARNING: no --checkpoint: random text tower (only meaningful for tests)', file=sys.stderr)
    torch.manual_seed(args.seed)
    enc = CLIPTextEncoder(model_name=args.model, model_overrides=overrides, checkpoint=args.checkpoint,
                          context_length=args.context_length)
    enc.to(args.device)
    enc.show_progress = not args.no_progress  # tqdm bar over class batches (open_clip's zero-shot classifier)
    templates = dict(vild=VILD_TEMPLATES, imagenet=IMAGENET_TEMPLATES, single=(SINGLE_TEMPLATE, ))[args.templates]
    emb = generate_text_embeddings(enc, names, templates, this_is=not args.no_this_is, chunk=len(names) + 1)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(emb), args.out)
    print(f'wrote {args.out}: {len(emb)} embeddings ({len(names)} classes + background), dim {enc.embed_dim}')
    if args.npy:
        arr = np.stack([emb[n].numpy() for n in names if n != BACKGROUND] + [emb[BACKGROUND].numpy()])
        np.save(args.npy, arr.astype(np.float32))
        names_file = npy_names_path(args.npy)  # a .npy is only accepted together with its names
        with open(names_file, 'w') as f:
            f.write('\n'.join([n for n in names if n != BACKGROUND] + [BACKGROUND]) + '\n')
        print(f'wrote {args.npy}: shape {arr.shape}, row names in {names_file}')
    return emb


def _cuda():
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:
        return False


def class_names_from(spec: str, resolve):
    """Names from an annotation json (categories sorted by id), a preset / names file, or a comma list."""
    if spec.endswith('.json') and osp.isfile(spec):
        with open(spec) as f:
            obj = json.load(f)
        if isinstance(obj, dict) and 'categories' in obj:
            return [c['name'] for c in sorted(obj['categories'], key=lambda c: c['id'])]
    if ',' in spec and not osp.exists(spec):
        return [s.strip() for s in spec.split(',') if s.strip()]
    return resolve(spec)


if __name__ == '__main__':
    main()
