# CorrCLIP, OpenAI CLIP ViT-B/16 + DINO ViT-B/8 + SAM 2 region masks: training-free evaluation on Cityscapes, CorrCLIP's protocol (short side 448, window 224 / stride 112).
# Masks: data/region_masks/city/<image stem>.npz (CorrCLIP's region_masks.zip, or tools/gen_masks.py --generator sam2).
_base_ = ['./_base_/default_runtime.py', './_base_/model_corrclip_vitb16_dino-b8.py', './_base_/ds_cityscapes_proxyclip-448.py']
model = dict(class_names='corrclip_cls_city_scapes', logit_scale=40.0, prob_thd=0.0, slide_crop=224, slide_stride=112,
             proxy=dict(mask_source=dict(type='MaskFileSource', mask_dir='data/region_masks/city')))
