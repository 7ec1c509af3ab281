"""finbatch analytics: datasets, per-partition kernels, one module per job family, output commit.

This package never imports :mod:`cluster` or boto3: it receives a Dask client and works with it.
"""
