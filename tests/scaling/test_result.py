

def test_a_bootstrap_whose_every_resample_failed_gives_no_interval_instead_of_crashing() -> None:
    """A quality-study fit whose 200 refits all failed crashed the results writer (numpy returns a scalar
    percentile for an empty array)."""
    import numpy as np

    from robustperf.scaling.result import BootstrapResult, FitResult

    boot = BootstrapResult(samples={"A": np.array([]), "E": np.array([np.nan, np.nan])}, n_resamples=200,
                           n_failed=200, seed=0)
    lo, hi = boot.interval("A")
    assert np.isnan(lo) and np.isnan(hi) and np.isnan(boot.interval("E")[0])
    fit = FitResult(params={"A": 1.0, "E": 0.5}, status="ok", objective=0.0, n_points=8, bootstrap=boot,
                    law="approach3")
    est = fit.estimate("A")
    assert est.value == 1.0 and est.low is None and str(est) == "1"
