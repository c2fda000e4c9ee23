"""The rows of the results table on MNIST-format data (configs/results/): every method on the
student it was made for, each against that student trained alone, in one regime."""
from .report import Row
from .table import Budget, Teacher

CFG = 'configs/results'
#: the full table's budget (tools/benchmark/results.py); the regime: docs/benchmarks.md
BUDGET = Budget(seeds=3, epochs=3, labelled=6000)
TEACHERS = [
    Teacher('teacher_cnn', 'CNN teacher', f'{CFG}/teacher_cnn.py', epochs=12),
    Teacher('teacher_vit', 'ViT teacher', f'{CFG}/teacher_vit.py', epochs=15),
]
VIT, CNN = 'small ViT', 'small CNN'
# The rows and Cross-Architecture KD + KD (its working variant, docs/cakd.md) are the
# default table (about 100 min from nothing on 2 cores); ``extra`` rows run with --extras.
ROWS = [
    Row('vit_baseline', VIT, 'no distillation', f'{CFG}/vit_baseline.py'),
    Row('vit_kd', VIT, 'KD', f'{CFG}/vit_kd.py', 'teacher_cnn'),
    Row('vit_nkd', VIT, 'NKD', f'{CFG}/vit_nkd.py', 'teacher_cnn'),
    Row('vit_dkd', VIT, 'DKD', f'{CFG}/vit_dkd.py', 'teacher_cnn'),
    Row('vit_deit', VIT, 'DeiT (hard, distillation token)', f'{CFG}/vit_deit.py', 'teacher_cnn'),
    Row('vit_cskd', VIT, 'CSKD', f'{CFG}/vit_cskd.py', 'teacher_cnn'),
    Row('vit_vitkd', VIT, 'ViTKD', f'{CFG}/vit_vitkd.py', 'teacher_vit'),
    Row('vit_vitkd_nkd', VIT, 'ViTKD + NKD', f'{CFG}/vit_vitkd_nkd.py', 'teacher_vit'),
    Row('cnn_baseline', CNN, 'no distillation', f'{CFG}/cnn_baseline.py'),
    Row('cnn_kd', CNN, 'KD', f'{CFG}/cnn_kd.py', 'teacher_cnn'),
    Row('cnn_fitnet', CNN, 'FitNet', f'{CFG}/cnn_fitnet.py', 'teacher_cnn'),
    Row('cnn_tat', CNN, 'TaT (one-to-all)', f'{CFG}/cnn_tat.py', 'teacher_cnn'),
    Row('cnn_tat_kd', CNN, 'TaT + KD', f'{CFG}/cnn_tat_kd.py', 'teacher_cnn',
        reference='cnn_kd', extra=True),
    Row('cnn_cakd', CNN, 'Cross-Architecture KD', f'{CFG}/cnn_cakd.py', 'teacher_vit'),
    Row('cnn_cakd_public', CNN, 'Cross-Architecture KD (public code)',
        f'{CFG}/cnn_cakd_public-code.py', 'teacher_vit', extra=True),
    # the reference of the next row: logits alone from the same teacher (docs/cakd.md)
    Row('cnn_kd_vit', CNN, 'KD (ViT teacher)', f'{CFG}/cnn_kd_vit-teacher.py', 'teacher_vit',
        extra=True),
    Row('cnn_cakd_kd', CNN, 'Cross-Architecture KD + KD', f'{CFG}/cnn_cakd_kd.py', 'teacher_vit',
        reference='cnn_kd_vit'),
]
