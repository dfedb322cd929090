#!/usr/bin/python3
"""A loopback HTTPS server for the egress-proxy row of scripts/bench.

usage: tls_blob_server.py --dir DIR --ip IP --mib N

Makes a throw-away CA and a certificate for IP in DIR (openssl), serves
GET /blob (N MiB of random bytes) over TLS on IP (any free port), and
prints "LISTENING <port> <ca.pem>" once it accepts connections.
"""
import argparse
import http.server
import os
import ssl
import subprocess
import sys


def make_cert(d, ip):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    p = lambda name: os.path.join(d, name)  # noqa: E731
    run(["req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "1",
         "-subj", "/CN=ccr bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["req", *ec, "-keyout", p("srv.key"), "-out", p("srv.csr"), "-subj", "/CN=" + ip])
    with open(p("srv.ext"), "w") as f:
        f.write("subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" % ip)
    run(["x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
         "-out", p("srv.pem"), "-days", "1", "-extfile", p("srv.ext")])
    return p("ca.pem"), p("srv.pem"), p("srv.key")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ip", default="127.0.0.2")
    ap.add_argument("--mib", type=int, default=10)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    ca, cert, key = make_cert(a.dir, a.ip)
    blob = os.urandom(a.mib << 20)

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/blob":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            view = memoryview(blob)
            for i in range(0, len(blob), 1 << 18):
                self.wfile.write(view[i:i + (1 << 18)])

    httpd = http.server.ThreadingHTTPServer((a.ip, 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    print("LISTENING %d %s" % (httpd.server_address[1], ca), flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
