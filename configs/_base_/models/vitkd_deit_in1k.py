# ViTKD distiller for an ImageNet DeiT student; each config in configs/vitkd/ sets the student's
# width, the teacher, the teacher's checkpoint and the loss widths.
model = dict(
    type='ClassificationDistiller',
    # the plain DeiT (no distillation token, as in the paper), DeiT's drop path 0.1
    student=dict(
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer', arch='deit-tiny', img_size=224, patch_size=16,
                      drop_path_rate=0.1),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=192,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                  dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]),
    # One preprocessor for both models, so mixup/cutmix live here and the teacher sees the same
    # mixed batch; the DeiT III teachers were trained with this same normalisation.
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=1000,
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True,
        batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                      dict(type='CutMix', alpha=1.0)])),
    # first two blocks (raw) and the last one after the final LayerNorm, whatever the depths
    student_taps=dict(low0='backbone.layers.0', low1='backbone.layers.1', high='backbone.ln1'),
    teacher_taps=dict(low0='backbone.layers.0', low1='backbone.layers.1', high='backbone.ln1'),
    distill_losses=dict(
        loss_vitkd=dict(type='ViTKDLoss', s_dims=192, t_dims=384,
                        alpha=3e-5, beta=3e-6, lambda_mask=0.5)),
)
