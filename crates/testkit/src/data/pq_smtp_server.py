"""An implicit-TLS SMTP sink over pyOpenSSL, for the relay's post-quantum
key-exchange tests: the OpenSSL bundled in the `cryptography` wheel (3.5 or
newer) offers X25519MLKEM768, Debian 12's 3.0 does not.

usage: pq_smtp_server.py PORT CERT KEY LOG
Serves connections one at a time until killed; appends "group=..." for
each handshake, and each command, to LOG.
"""

import socket
import sys

from OpenSSL import SSL


def main():
    port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate_chain_file(cert)
    ctx.use_privatekey_file(key)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(8)

    def note(text):
        with open(log, "a") as f:
            f.write(text + "\n")

    while True:
        sock, _ = lsock.accept()
        try:
            serve(ctx, sock, note)
        except Exception as e:  # one bad client must not stop the sink
            note("error=%r" % (e,))
        finally:
            sock.close()


def serve(ctx, sock, note):
    conn = SSL.Connection(ctx, sock)
    conn.set_accept_state()
    conn.do_handshake()
    note("group=%s version=%s" % (conn.get_group_name(), conn.get_protocol_version_name()))
    buf = bytearray()

    def line():
        while b"\r\n" not in buf:
            try:
                chunk = conn.recv(4096)
            except SSL.ZeroReturnError:
                chunk = b""
            if not chunk:
                return None
            buf.extend(chunk)
        end = buf.index(b"\r\n")
        text = bytes(buf[:end]).decode("utf-8", "replace")
        del buf[: end + 2]
        return text

    conn.sendall(b"220 pq.test ESMTP\r\n")
    while True:
        cmd = line()
        if cmd is None:
            return
        note(cmd)
        verb = cmd.split(" ", 1)[0].upper()
        if verb == "EHLO":
            conn.sendall(b"250-pq.test\r\n250 8BITMIME\r\n")
        elif verb == "DATA":
            conn.sendall(b"354 go\r\n")
            while True:
                body = line()
                if body is None or body == ".":
                    break
            conn.sendall(b"250 2.0.0 queued\r\n")
        elif verb == "QUIT":
            conn.sendall(b"221 2.0.0 bye\r\n")
            conn.shutdown()
            return
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")


if __name__ == "__main__":
    main()
