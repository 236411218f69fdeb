"""Cost accounting: FLOPs that ran, energy, time, kWh, CO2, USD.

Importing this package must not import torch (scaling uses the constants).

Modules:
    constants    sourced constants (PUE, grid intensities, prices, GPU specs, equivalents); pure Python.
    conversions  joules/FLOPs/time -> kWh, CO2, USD, GPU-hours; pure Python.
    analytic     forward-pass equivalents per method, f_arch, C = k f N D; pure Python.
    meters/      energy meters, one a file (nvml, sampling, rapl, estimate, fake, none, auto), their registry
                 and create_meter; torch only for DDP sums.
    energy       the public import of the meters (re-exports meters/).
    flops        dispatch-mode FLOP counter, meta-device copies (torch).
    accounting   counted training FLOPs per sample, eval FLOPs, the run record's cost block.
    inference    latency/throughput/memory/energy per batch size and precision, int8 with convs (torch).
"""
