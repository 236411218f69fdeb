"""Cost accounting: FLOPs that ran, energy, time, kWh, CO2, USD.

Importing this package must not import torch (scaling uses the constants).
"""
