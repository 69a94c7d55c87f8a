"""The device a job runs on: datasheet profiles and `auto` resolution (profiles.py), measured
ceilings (calibration.py), the memory an engine gets on its GPU, a smaller card's emulated on a
bigger one included (budget.py), and whether a run fits that memory (fit.py).

Nothing here imports torch at import time; calibration imports it inside its functions.
"""
