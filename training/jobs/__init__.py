"""Jobs on a served model: retraining with its promotion rule (champion / challenger).
"""
