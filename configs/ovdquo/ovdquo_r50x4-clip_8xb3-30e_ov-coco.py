# OV-DQUO on a frozen OpenAI CLIP RN50x4 with CORA's region prompt, OV-COCO: the original's
# config/OV_COCO/OVDQUO_RN50x4.py and scripts/OV-COCO/distrain_RN50x4.sh, which trains with 3 images per GPU
# (--options batch_size=3, 8 GPUs x 3 = 24; learning rate unchanged, 1e-4).  Released model: 45.6 AP50-novel.
# Everything else as the RN50 config: C3 / C4 = 640 / 1280 channels, C5 2560, attention-pool grid 9 x 9 (C4 RoIs
# 18 x 18), CLIP width 640.  Text embeddings:
#   python tools/gen_text_embeddings.py --model RN50x4 --checkpoint checkpoints/RN50x4.pt --classes ov_coco \
#       --extra-classes object --templates imagenet --no-this-is --context-length 15 \
#       --out data/text_embeddings/ov_coco_object_rn50x4_imagenet-ctx15.pt
_base_ = ['ovdquo_r50-clip_8xb4-30e_ov-coco.py']
model = dict(
    text_embeddings='data/text_embeddings/ov_coco_object_rn50x4_imagenet-ctx15.pt',
    backbone=dict(model_name='RN50x4', checkpoint='checkpoints/RN50x4.pt',
                  region_prompt='checkpoints/region_prompt_R50x4.pth'),
    neck=dict(in_channels=[640, 1280]))
train_dataloader = dict(batch_size=3)
auto_scale_lr = dict(base_batch_size=24)
