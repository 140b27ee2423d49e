"""Write the synthetic open-vocabulary detection set used by configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py
(and configs/ovdquo/_base_/datasets/ov_shapes_synthetic.py), plus text embeddings of its class names (plus "object",
the wildcard of OV-DQUO's open-world boxes) from the tiny random CLIP text tower and open-world pseudo boxes of the
train images (annotations/train_pseudo.json).

    python tools/make_synthetic_det.py --out data/synthetic_ov_det [--num-train 32 --num-val 16 --size 128]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='data/synthetic_ov_det')
    p.add_argument('--num-train', type=int, default=32)
    p.add_argument('--num-val', type=int, default=16)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-text', action='store_true', help='skip the tiny-CLIP text embeddings')
    p.add_argument('--no-pseudo', action='store_true',
                   help='skip annotations/train_pseudo.json (open-world pseudo boxes in OV-DQUO\'s format)')
    args = p.parse_args(argv)
    from declip_mm.datasets.synthetic_det import SYNTH_CLASSES, make_synthetic_ov_det
    paths = make_synthetic_ov_det(args.out, args.num_train, args.num_val, args.size, args.seed,
                                  pseudo=not args.no_pseudo)
    for k, v in paths.items():
        print(f'wrote {v}')
    if not args.no_text:
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            'gen_text_embeddings', osp.join(osp.dirname(osp.abspath(__file__)), 'gen_text_embeddings.py'))
        gen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen)
        out = osp.join(args.out, 'text_embeddings_tiny_eva.pt')
        gen.main(['--classes', ','.join(SYNTH_CLASSES + ('object', )), '--out', out, '--tiny', 'eva',
                  '--seed', str(args.seed), '--device', 'cpu'])
        paths['text_embeddings'] = out
    return paths


if __name__ == '__main__':
    main()
