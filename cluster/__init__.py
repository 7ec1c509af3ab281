"""Where the Dask cluster comes from (a LocalCluster, an existing scheduler, AWS Batch nodes).

This package never imports a job module: it hands a connected client to the callable it is given.
"""
