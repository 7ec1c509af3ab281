# finbatch: one image for every node of an AWS Batch job (multi-node or single-node).
# Build: docker build -t finbatch:0.1.0 .   (see docs/aws.md, "Deploy")
#
# Stage 1 installs the pinned dependencies (constraints.txt) and finbatch into a virtualenv;
# stage 2 copies that virtualenv alone onto a clean slim base and runs it as a non-root user.
# No credentials and no data go into the image: jobs get AWS access from their job role and
# read their data from S3 at run time.

FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/finbatch/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the pins change.
COPY constraints.txt ./
RUN python -m venv /opt/finbatch \
    && pip install --no-cache-dir --requirement constraints.txt

COPY pyproject.toml README.md entrypoint.py ./
COPY analytics/ analytics/
COPY cluster/ cluster/
COPY finbatch/ finbatch/
RUN pip install --no-cache-dir --no-build-isolation --constraint constraints.txt . \
    && pip check \
    && finbatch --help > /dev/null


FROM python:3.11-slim-bookworm

# A fixed, unprivileged user: the job role gives AWS access, nothing needs root.
RUN groupadd --system --gid 10001 finbatch \
    && useradd --system --uid 10001 --gid finbatch --create-home --home-dir /home/finbatch finbatch

COPY --from=build /opt/finbatch /opt/finbatch

# Unbuffered output reaches CloudWatch as it is printed; Dask spills to the container's /tmp.
ENV PATH=/opt/finbatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DASK_TEMPORARY_DIRECTORY=/tmp

USER 10001:10001
WORKDIR /home/finbatch

# Dask scheduler and dashboard of a multi-node job's main node (bound to its private address).
EXPOSE 8786 8787

# The console script `finbatch` is entrypoint.py (a shim over finbatch.cli): `docker run IMAGE JOB --input ...`.
ENTRYPOINT ["finbatch"]
CMD ["--help"]
