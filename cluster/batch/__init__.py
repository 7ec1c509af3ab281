"""How jobs reach AWS Batch: job definitions built by pure functions from one spec
(:mod:`cluster.batch.jobdef`), the ``batch`` command group (:mod:`finbatch.batch.cli`), and the
thin boto3 gateway that is the only code calling AWS (:mod:`finbatch.batch.gateway`).
"""
