# finbatch: one image for every node of an AWS Batch job (multi-node or single-node).
# Build: docker build -t finbatch:0.1.0 .   (see docs/aws.md, "Deploy")
#
# Stage 1 installs the locked dependencies (requirements.lock: constraints.txt's versions, each
# with its files' SHA-256, installed with --require-hashes) and finbatch into a virtualenv;
# stage 2 copies that virtualenv alone onto a clean slim base and runs it as a non-root user.
# No credentials and no data go into the image: jobs get AWS access from their job role and
# read their data from S3 at run time.
#
# The base is pinned by digest (both stages): a re-pushed tag cannot change what is built. To
# move to a newer base, read the tag's current digest and replace it in both FROM lines:
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/finbatch/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the lock changes. Every file
# pip fetches must match a hash of the lock, and nothing unlocked can come in (--no-deps).
COPY requirements.lock ./
RUN python -m venv /opt/finbatch \
    && pip install --no-cache-dir --require-hashes --no-deps --requirement requirements.lock

# finbatch itself (a local folder has no hash to check) with the locked build backend and
# nothing else; pip check proves the locked set satisfies its dependencies.
COPY pyproject.toml README.md entrypoint.py ./
COPY analytics/ analytics/
COPY cluster/ cluster/
COPY finbatch/ finbatch/
RUN pip install --no-cache-dir --no-build-isolation --no-deps . \
    && pip check \
    && finbatch --help > /dev/null


FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# A fixed, unprivileged user: the job role gives AWS access, nothing needs root.
RUN groupadd --system --gid 10001 finbatch \
    && useradd --system --uid 10001 --gid finbatch --create-home --home-dir /home/finbatch finbatch

COPY --from=build /opt/finbatch /opt/finbatch

# Unbuffered output reaches CloudWatch as it is printed; Dask spills to the container's /tmp.
ENV PATH=/opt/finbatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DASK_TEMPORARY_DIRECTORY=/tmp

# The commit the image is built from, recorded in every run's manifest as its code version:
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t finbatch:0.1.0 .
ARG GIT_COMMIT=""
ENV FINBATCH_GIT_COMMIT=$GIT_COMMIT

USER 10001:10001
WORKDIR /home/finbatch

# Dask scheduler and dashboard of a multi-node job's main node (bound to its private address).
EXPOSE 8786 8787

# The console script `finbatch` is entrypoint.py (a shim over finbatch.cli): `docker run IMAGE JOB --input ...`.
ENTRYPOINT ["finbatch"]
CMD ["--help"]
