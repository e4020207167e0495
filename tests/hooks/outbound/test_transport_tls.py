"""Webhooks over HTTPS through the SSRF guard (hooks/outbound/transport.py sends
with urllib3 directly): the connection goes to the checked address while the
TLS server name (SNI) and the Host header keep the URL's name; an unverified
certificate is refused unless the action turns verification off. A real TLS
server on 127.0.0.1 with a certificate made for the test (``cryptography``)."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hooks.outbound.rendering import RenderedRequest
from hooks.outbound.transport import send


@pytest.fixture
def tls_server(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    seen: dict[str, list] = {"sni": [], "requests": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_PUT(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen["requests"].append((self.path, self.headers["Host"], self.headers["webhook-id"], body))
            answer = b'{"ok": true}'
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda sock, server_name, ctx: seen["sni"].append(server_name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def request(port: int) -> RenderedRequest:
    return RenderedRequest(
        method="PUT", url=f"https://localhost:{port}/people/7?a=1", headers={"X-Test": "1"}, body='{"name": "Ann"}'
    )


def test_https_keeps_the_name_for_tls_and_host_while_connecting_to_the_checked_address(tls_server):
    port, seen = tls_server
    outcome = send(request(port), message_id="msg_tls", verify_ssl=False, timeout=5)
    assert (outcome.status, outcome.error, outcome.response_body) == (201, "", '{"ok": true}')
    assert seen["sni"] == ["localhost"]
    assert seen["requests"] == [("/people/7?a=1", f"localhost:{port}", "msg_tls", b'{"name": "Ann"}')]
    assert send(request(port), message_id="msg_tls_2", verify_ssl=False, timeout=5).status == 201
    assert len(seen["sni"]) == 1  # the second delivery reused the kept-alive TLS connection


def test_https_refuses_a_certificate_it_cannot_verify(tls_server):
    port, seen = tls_server
    outcome = send(request(port), message_id="msg_tls", verify_ssl=True, timeout=5)
    assert outcome.status is None
    assert outcome.error.startswith("TLS failure: ") and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert seen["requests"] == []
