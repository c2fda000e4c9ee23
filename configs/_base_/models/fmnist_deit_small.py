# The small ViT of fmnist_vit_small.py with a DeiT distillation token (for DeiT/CSKD students).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DistilledVisionTransformer',
                  arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
                  img_size=28, patch_size=4, in_channels=1, drop_rate=0.0, drop_path_rate=0.1),
    neck=None,
    head=dict(type='DistillTokenClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
