"""Speed / memory benchmarks.  Each sub-command lives in ``declip_mm/benchmarks/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> dict``.

    python tools/benchmark.py backbone [--model EVA02-B-16 --size 224 --batch 2 ...]
    python tools/benchmark.py distill CONFIG
    python tools/benchmark.py det CONFIG
    python tools/benchmark.py seg CONFIG
    python tools/benchmark.py infer {det,seg,zeroshot} CONFIG [--images DIR | --num-images 20] [--texts ...]
    python tools/benchmark.py pipeline CONFIG      # distillation data pipeline alone, images/s per worker
All report images/s and peak memory; distill / det / seg also FLOPs per image and MFU (--peak-tflops).
"""
import argparse
import importlib
import json

COMMANDS = ('backbone', 'distill', 'det', 'seg', 'infer', 'pipeline')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f'declip_mm.benchmarks.{name}')
        except ModuleNotFoundError as e:
            if e.name != f'declip_mm.benchmarks.{name}':
                raise
            continue
        p = sub.add_parser(name, help=(mod.__doc__ or '').strip().splitlines()[0] if mod.__doc__ else name)
        mod.add_arguments(p)
        p.add_argument('--json', help='also write the result dict to this JSON file')
        p.set_defaults(_mod=mod)
    args = parser.parse_args(argv)
    result = args._mod.run(args)
    if getattr(args, 'json', None):
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
