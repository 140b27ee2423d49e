# ProxyCLIP, OpenAI CLIP ViT-B/16 + DINO ViT-B/8: training-free evaluation on PASCAL VOC-20 (no background), ProxyCLIP's protocol (short side 336, window 336 / stride 112).
_base_ = ['./_base_/default_runtime.py', './_base_/model_proxyclip_vitb16_dino-b8.py', './_base_/ds_voc20_proxyclip-336.py']
model = dict(class_names='cls_voc20', logit_scale=40.0, prob_thd=0.0)
