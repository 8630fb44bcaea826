"""Whether it helped, measured.

Ranking metrics, paired bootstrap statistics, evaluation on labelled data,
cross-validated tuning, and the diagnostics (recall ceiling, field ablation).

May import: :mod:`core.models`, :mod:`core.data` and :mod:`core.search`.
"""
