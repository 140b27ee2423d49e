# Evaluate a CAT-Seg ViT-L/14-336 checkpoint (trained with catseg_vitl14-336_4xb1-80k_coco-stuff171-train-336.py) on voc20:  python tools/test.py configs/catseg/catseg_vitl14-336_4xb1-80k_voc20.py CHECKPOINT
_base_ = ['./_base_/default_runtime.py', './_base_/models/catseg_vitl14_openai.py', './_base_/eval_voc20.py']
model = dict(test_class_names='catseg_voc20')
