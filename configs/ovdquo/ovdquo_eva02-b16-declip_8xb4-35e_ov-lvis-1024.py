# OV-DQUO + DeCLIP ViT-B/16, OV-LVIS, 1024 x 1024: the original ViT-B/16 recipe with the DeCLIP backbone
# (dense CLIP map in DeCLIP's decoupled 'csa' mode; the taps, incl. the no-attention last block, as CLIPSelf's).
# Paper (DeCLIP, OV-DQUO): 31.0 box APr.  Text: EVA02-CLIP-B/16's own text tower (DeCLIP does not train it):
#   python tools/gen_text_embeddings.py --model EVA02-B-16 --checkpoint checkpoints/EVA02_CLIP_B_psz16_s8B.pt \
#       --classes lvis_v1 --extra-classes object --out data/text_embeddings/lvis_v1_object_eva02-b16.pt
_base_ = ['_base_/models/ovdquo_eva02-b16.py', '_base_/datasets/ov_lvis_1024.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(
    data_preprocessor=_base_.data_preprocessor,
    class_names='lvis_v1',
    novel_classes='lvis_v1',
    text_embeddings='data/text_embeddings/lvis_v1_object_eva02-b16.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=100, pool='all'),
    novel_boost=8.0,
    backbone=dict(checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa'),
    test_cfg=dict(max_per_img=300))
default_hooks = dict(checkpoint=dict(save_best='lvis/bbox_APr', rule='greater'))
