# ProxyCLIP, MetaCLIP ViT-B/16 + DINO ViT-B/8: training-free evaluation on Cityscapes, ProxyCLIP's protocol (short side 448, window 224 / stride 112).
_base_ = ['./_base_/default_runtime.py', './_base_/model_proxyclip_vitb16-metaclip_dino-b8.py', './_base_/ds_cityscapes_proxyclip-448.py']
model = dict(class_names='cls_city_scapes', logit_scale=40.0, prob_thd=0.0, slide_crop=224, slide_stride=112)
