"""The embedded default, end to end on CPU with tiny random models and generated data (no downloads).

Stages (all by default, in order; pick with --stages):
  backbone  DeCLIPViT in every last-block mode on a real photo: proxy-token attention maps + feature shapes
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))


def stage_backbone(out_dir):
    import demo_backbone
    return demo_backbone.main(['--out-dir', os.path.join(out_dir, 'backbone')])


STAGES = {'backbone': stage_backbone}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out-dir', default=os.path.join(ROOT, 'outputs', 'default'))
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=list(STAGES))
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.stages:
        t0 = time.time()
        print(f'\n=== stage: {name} ===', flush=True)
        STAGES[name](args.out_dir)
        print(f'=== {name} done in {time.time() - t0:.1f}s ===', flush=True)
    print(f'\nAll outputs under {args.out_dir}')


if __name__ == '__main__':
    main()
