# OpenAI CLIP ViT-B/16 student (no official script; by analogy with the EVA B/16 one): det 560 / DINOv2 490,
# AdamW betas (0.9, 0.98), eps 1e-6 (the official choice for OpenAI CLIP names), split q/k/v weights so the
# qq rule can freeze only the last block's K. The dense map is L2-normalised before RoIAlign (CLIPSelf heritage).
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']

clip_checkpoint = 'checkpoints/openai_vit_b16.pt'
model = dict(student=dict(model_name='ViT-B-16', checkpoint=clip_checkpoint, dense_mode='qq', split_qkv=True))
optim_wrapper = dict(optimizer=dict(betas=(0.9, 0.98), eps=1e-6))
