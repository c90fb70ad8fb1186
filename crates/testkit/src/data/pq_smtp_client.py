"""An SMTP client over pyOpenSSL, for the post-quantum key-exchange tests.

pyOpenSSL drives the OpenSSL bundled in the `cryptography` wheel (3.5 or
newer, which offers X25519MLKEM768 first by default), not Debian's 3.0, so
this is an ML-KEM-capable TLS stack that Postern did not write.

usage: pq_smtp_client.py HOST PORT starttls|implicit SERVER_NAME [RCPT]
Prints "group=..", "version=.." and "cipher=.." after the handshake, then
every reply line; exits 0 when the message was accepted (or, without RCPT,
when QUIT got 221).
"""

import socket
import sys

from OpenSSL import SSL


def main():
    host, port, mode, server_name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    rcpt = sys.argv[5] if len(sys.argv) > 5 else None
    sock = socket.create_connection((host, port), timeout=10)
    # A socket with a timeout is non-blocking underneath, which pyOpenSSL
    # reports as WantReadError; the caller bounds the run instead.
    sock.settimeout(None)
    buf = bytearray()

    def recv_plain():
        return sock.recv(4096)

    def reply(recv):
        # One reply, possibly multiline; read byte-exact so nothing after a
        # STARTTLS 220 is consumed by the plaintext reader.
        lines = []
        while True:
            while b"\r\n" not in buf:
                chunk = recv()
                if not chunk:
                    raise SystemExit("connection closed: %r" % bytes(buf))
                buf.extend(chunk)
            end = buf.index(b"\r\n")
            line = bytes(buf[:end]).decode("ascii", "replace")
            del buf[: end + 2]
            print(line)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return line

    if mode == "starttls":
        reply(recv_plain)
        sock.sendall(b"EHLO pq.test\r\n")
        reply(recv_plain)
        sock.sendall(b"STARTTLS\r\n")
        if not reply(recv_plain).startswith("220"):
            raise SystemExit("STARTTLS refused")

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name(server_name.encode())
    conn.set_connect_state()
    conn.do_handshake()
    print("group=%s" % conn.get_group_name())
    print("version=%s" % conn.get_protocol_version_name())
    print("cipher=%s" % conn.get_cipher_name())

    def recv_tls():
        try:
            return conn.recv(4096)
        except SSL.ZeroReturnError:
            return b""

    def cmd(line):
        conn.sendall(line.encode() + b"\r\n")
        return reply(recv_tls)

    if mode == "implicit":
        reply(recv_tls)
    cmd("EHLO pq.test")
    ok = True
    if rcpt:
        ok = cmd("MAIL FROM:<pq@pq.test>").startswith("250")
        ok = ok and cmd("RCPT TO:<%s>" % rcpt).startswith("250")
        ok = ok and cmd("DATA").startswith("354")
        ok = ok and cmd("Subject: post-quantum\r\n\r\nhybrid key exchange\r\n.").startswith("250")
    ok = cmd("QUIT").startswith("221") and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
