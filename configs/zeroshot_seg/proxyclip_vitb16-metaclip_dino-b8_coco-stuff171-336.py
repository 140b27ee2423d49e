# ProxyCLIP, MetaCLIP ViT-B/16 + DINO ViT-B/8: training-free evaluation on COCO-Stuff-171, ProxyCLIP's protocol (short side 336, window 336 / stride 112).
_base_ = ['./_base_/default_runtime.py', './_base_/model_proxyclip_vitb16-metaclip_dino-b8.py', './_base_/ds_coco_stuff171_proxyclip-336.py']
model = dict(class_names='cls_coco_stuff', logit_scale=40.0, prob_thd=0.0)
