# CorrCLIP, MetaCLIP ViT-B/16 + DINO ViT-B/8 + SAM 2 region masks: training-free evaluation on COCO-Object (background + 80 things), CorrCLIP's protocol (short side 336, window 336 / stride 112).
# Masks: data/region_masks/coco/<image stem>.npz (CorrCLIP's region_masks.zip, or tools/gen_masks.py --generator sam2).
_base_ = ['./_base_/default_runtime.py', './_base_/model_corrclip_vitb16-metaclip_dino-b8.py', './_base_/ds_coco_object_proxyclip-336.py']
model = dict(class_names='corrclip_cls_coco_object', logit_scale=40.0, prob_thd=0.25,
             proxy=dict(mask_source=dict(type='MaskFileSource', mask_dir='data/region_masks/coco')))
