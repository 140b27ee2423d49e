"""Backbone demo: run a real photo through a DeCLIPViT in every last-block mode and draw the attention map of
one anchor ("proxy") token per mode, as in the DeCLIP paper's figure; print the feature shapes.

    python tools/demo_backbone.py [--model EVA02-B-16] [--checkpoint CKPT] [--image IMG] [--out-dir outputs/demo]

Without --checkpoint a small randomly initialised model is used (no downloads): the maps then show the mechanics
(where each mode looks), not trained semantics.
"""
import argparse
import os

import numpy as np
import torch


def load_image(path, size):
    """RGB uint8 (size, size, 3): the training letterbox (longest side = size, black pad right/bottom)."""
    from PIL import Image

    from declip_mm.datasets.transforms.grid_crops import letterbox
    return letterbox(np.asarray(Image.open(path).convert('RGB')), size)[0]


def default_image():
    import matplotlib
    path = os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'sample photo not found at {path}; pass --image')
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='EVA02-B-16')
    p.add_argument('--checkpoint', default=None, help='local CLIP / DeCLIP checkpoint (default: tiny random model)')
    p.add_argument('--image', default=None, help='image path (default: matplotlib sample photo)')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--anchor', type=float, nargs=2, default=(0.35, 0.45),
                   help='anchor position as (row, col) fractions of the image')
    p.add_argument('--out-dir', default='outputs/demo_backbone')
    args = p.parse_args(argv)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from declip_mm.models.backbones import MODES, DeCLIPViT, clip_family, tiny_clip_overrides
    from declip_mm.models.backbones.attention_maps import anchor_attention

    torch.manual_seed(0)
    overrides = None if args.checkpoint else tiny_clip_overrides(clip_family(args.model))
    bb = DeCLIPViT(args.model, model_overrides=overrides, checkpoint=args.checkpoint, out_indices=(-1, ),
                   out_types=('feats', 'dense', 'context', 'cls'), frozen=True)
    rgb = load_image(args.image or default_image(), args.size)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float()[None]
    x = (x - torch.tensor(bb.mean)[:, None, None]) / torch.tensor(bb.std)[:, None, None]
    g = args.size // bb.patch_size
    anchor = (min(g - 1, int(args.anchor[0] * g)), min(g - 1, int(args.anchor[1] * g)))
    os.makedirs(args.out_dir, exist_ok=True)
    print(f'DeCLIPViT {args.model} ({"random tiny" if overrides else args.checkpoint}): width {bb.width}, '
          f'{bb.num_blocks} blocks, {bb.num_heads} heads, patch {bb.patch_size}, embed {bb.embed_dim}; '
          f'input {tuple(x.shape)}; anchor token {anchor}')
    fig, axes = plt.subplots(2, (len(MODES) + 2) // 2, figsize=(3 * ((len(MODES) + 2) // 2), 6.2))
    axes = axes.ravel()
    axes[0].imshow(rgb)
    axes[0].scatter([(anchor[1] + .5) * bb.patch_size], [(anchor[0] + .5) * bb.patch_size], c='r', marker='x')
    axes[0].set_title('image + anchor')
    for ax, mode in zip(axes[1:], MODES):
        bb.dense_mode = mode
        out = bb.extract(x)
        shapes = {k: (tuple(v.shape) if torch.is_tensor(v) else [tuple(t.shape) for t in v]) for k, v in out.items()}
        print(f'  {mode:13s} ' + ', '.join(f'{k}={s}' for k, s in shapes.items()))
        attn = anchor_attention(bb, x, mode, [anchor])[0].numpy()
        up = np.kron(attn, np.ones((bb.patch_size, bb.patch_size)))
        ax.imshow(rgb)
        ax.imshow(up, cmap='jet', alpha=0.55)
        ax.set_title(mode)
        plt.imsave(os.path.join(args.out_dir, f'attn_{mode}.png'), up, cmap='jet')
    for ax in axes:
        ax.axis('off')
    fig.suptitle('last-block attention of one anchor token per mode')
    fig.tight_layout()
    grid_path = os.path.join(args.out_dir, 'attention_modes.png')
    fig.savefig(grid_path, dpi=80)
    print(f'wrote {grid_path} and {len(MODES)} per-mode PNGs in {args.out_dir}')
    return grid_path


if __name__ == '__main__':
    main()
