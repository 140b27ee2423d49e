# Official script setting (scripts/dist_DeCLIP_eva_vitb16_coco.sh): EVA02-CLIP-B/16 + DINOv2-B, det 560 / VFM 490,
# qq, loss weights 1.0 / 0.1, lr 1e-5, wd 0.1, 6 epochs, 1000-iteration warmup + per-iteration cosine,
# total batch 16 (4 GPUs x 4), fp16 AMP, alpha 0.7 at save. Here: bf16 autocast (fp16 + loss scaling on GPUs without
# bf16, see declip_mm/engine/amp.py); the official fp16: --cfg-options optim_wrapper.dtype=float16.
_base_ = ['./_base_/declip_runtime.py', './_base_/declip_schedule.py']  # 6 epochs, warmup 1000

data_root = 'data/coco/'
clip_checkpoint = 'checkpoints/EVA02_CLIP_B_psz16_s8B.pt'
vfm_checkpoint = 'checkpoints/dinov2_vitb14_reg4_pretrain.pth'
det_size = 560
student_patch = 16
crop_size = 224
max_crops = 20
batch_size = 4  # per GPU; 4 GPUs -> 16
# Data workers per GPU: one worker letterboxes + crops ~48 images/s at 560 (tools/benchmark.py pipeline, 1 busy
# CPU core); a step at 40 % MFU on an H100 is ~230 images/s (1.69 TFLOP/image), so 8 workers with pinned memory
# (the official 4 feed ~190 images/s). See docs/benchmarks.md.
num_workers = 8

model = dict(
    type='DeCLIPDistiller',
    data_preprocessor=dict(type='DeCLIPDataPreprocessor'),
    student=dict(type='DeCLIPViT', model_name='EVA02-B-16', checkpoint=clip_checkpoint, dense_mode='qq'),
    vfm=dict(type='VFMTeacher', name='dinov2_b', checkpoint=vfm_checkpoint),
    distill_mode='decoupled',
    content_weight=1.0,
    context_weight=0.1,
    unlocked_blocks='all',
    alpha=0.7,
    max_nonfinite_steps=10)  # NaN/Inf-loss steps skipped before the run stops

train_pipeline = [
    dict(type='DeCLIPGridCrops', det_size=det_size, student_patch=student_patch, vfm_patch=14,
         crop_size=crop_size, max_crops=max_crops, grid='official', seed=0),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DistillSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='DistillImageDataset', data_root=data_root,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))

val_cfg = None
val_dataloader = None
val_evaluator = None

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale='dynamic')  # + _base_: AdamW lr 1e-5, wd 0.1
