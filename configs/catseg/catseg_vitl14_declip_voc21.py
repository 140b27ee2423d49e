# Evaluate a catseg_vitl14_declip checkpoint on voc21:  python tools/test.py configs/catseg/catseg_vitl14_declip_voc21.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitl14_declip.py', './_base_/eval_voc21.py']
model = dict(test_class_names='catseg_voc20b', background_collapse=dict(num_foreground=20, background_first=True))
