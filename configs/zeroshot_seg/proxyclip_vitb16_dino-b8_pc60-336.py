# ProxyCLIP, OpenAI CLIP ViT-B/16 + DINO ViT-B/8: training-free evaluation on PASCAL-Context-60 (with background), ProxyCLIP's protocol (short side 336, window 336 / stride 112).
_base_ = ['./_base_/default_runtime.py', './_base_/model_proxyclip_vitb16_dino-b8.py', './_base_/ds_context60_proxyclip-336.py']
model = dict(class_names='cls_context60', logit_scale=40.0, prob_thd=0.15)
