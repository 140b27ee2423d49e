# DeCLIP EVA02-B/16 + ProxyCLIP (DINO ViT-B/8): training-free evaluation on COCO-Object (background + 80 things), ProxyCLIP's protocol (short side 336, window 336 / stride 112).
_base_ = ['./_base_/default_runtime.py', './_base_/model_proxyclip_eva02-b16-declip_dino-b8.py', './_base_/ds_coco_object_proxyclip-336.py']
model = dict(class_names='cls_coco_object', logit_scale=40.0, prob_thd=0.25)
