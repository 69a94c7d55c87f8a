"""The device a job runs on: datasheet profiles and `auto` resolution (profiles.py), measured
ceilings (calibration.py) and whether a run fits its memory (fit.py).

Nothing here imports torch at import time; calibration imports it inside its functions.
"""
