# Evaluate a catseg_vitl14_openai checkpoint on voc20:  python tools/test.py configs/catseg/catseg_vitl14_openai_voc20.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitl14_openai.py', './_base_/eval_voc20.py']
model = dict(test_class_names='catseg_voc20')
