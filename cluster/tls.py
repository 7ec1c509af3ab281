"""Mutual TLS between the nodes of one job: a per-job CA made by the main node.

The main node creates a fresh CA and one node certificate signed by it, and publishes the CA
certificate with the node certificate and key (never the CA's key) under the run's own output
prefix (``_cluster/tls-attempt-N.json``), where the children, which run with the same job role,
read it once they find the main node's scheduler port open (the bundle is published before the
scheduler listens). The scheduler, every worker and the driver require a peer certificate
signed by the job's CA, so a client without the job's credentials is refused at the TLS
handshake. The bundle is deleted when the job ends. See docs/aws.md, "Security", for the
threat model.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from distributed.security import Security

from analytics.data.storage import is_local, join, open_fs
from cluster.context import ClusterConfigError

#: How long the job's certificates are valid (Batch's longest job timeout is far shorter).
VALIDITY = dt.timedelta(days=14)


@dataclass(frozen=True)
class TlsBundle:
    """PEM texts: the job CA's certificate and the node certificate with its key."""

    ca_cert: str
    cert: str
    key: str

    def security(self) -> Security:
        """Dask security for every role: require TLS and a peer signed by the job's CA."""
        return Security(
            require_encryption=True,
            tls_ca_file=self.ca_cert,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            tls_scheduler_cert=self.cert,
            tls_scheduler_key=self.key,
            tls_worker_cert=self.cert,
            tls_worker_key=self.key,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_bundle(job_id: str) -> TlsBundle:
    """A new CA for ``job_id`` and a node certificate it signs (the CA key is then dropped)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"finbatch job {job_id} CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    node_key = ec.generate_private_key(ec.SECP256R1())
    node = (
        x509.CertificateBuilder()
        .subject_name(_name(f"finbatch job {job_id} node"))
        .issuer_name(ca_name)
        .public_key(node_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TlsBundle(
        ca.public_bytes(pem).decode(), node.public_bytes(pem).decode(), _pem_key(node_key)
    )


def bundle_url(output_url: str, attempt: int) -> str:
    return join(output_url, "_cluster", f"tls-attempt-{attempt}.json")


def publish(bundle: TlsBundle, url: str) -> None:
    """Write the bundle where the children look (owner-only permissions on a local folder)."""
    fs, path = open_fs(url)
    if is_local(fs):
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(json.dumps(asdict(bundle)).encode())
    if is_local(fs):
        import os

        os.chmod(path, 0o600)


def read(url: str) -> TlsBundle:
    """The bundle the main node published at ``url``, read once.

    A child reads it after the main node's scheduler port opened, and the main node publishes
    it before its scheduler listens, so a missing bundle is a configuration error, not a race.
    """
    fs, path = open_fs(url)
    try:
        with fs.open(path, "rb") as handle:
            data: dict[str, Any] = json.load(handle)
    except FileNotFoundError:
        raise ClusterConfigError(
            f"the main node's scheduler answers but its TLS bundle {url} does not exist: the "
            "main node runs with --insecure (every node must have the same options), or its "
            "output prefix differs from this node's"
        ) from None
    except PermissionError as err:
        raise ClusterConfigError(
            f"cannot read the main node's TLS bundle {url}: {err} (every node needs read "
            "access to the job's output prefix)"
        ) from err
    return TlsBundle(**data)


def withdraw(url: str) -> None:
    fs, path = open_fs(url)
    if fs.exists(path):
        fs.rm(path)
