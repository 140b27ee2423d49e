# DeCLIP EVA02-CLIP-B/16 (csa dense features), the paper's Table 5 setting: training-free evaluation on PASCAL VOC-21 (background from stuff words + prob threshold).
_base_ = ['./_base_/default_runtime.py', './_base_/model_declip_eva02_b16.py', './_base_/ds_voc21.py']
model = dict(class_names='cls_voc21', logit_scale=80.0, prob_thd=0.4)
