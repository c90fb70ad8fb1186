"""A receiving SMTP server for postern-relay's interop tests, on aiosmtpd.

Plain, STARTTLS or implicit TLS, with the TLS version pinned, optional
AUTH, and a JSON-lines log of what it saw (EHLO, MAIL and the messages),
so a test can check what reached the peer and over which TLS version.
"""
import argparse
import asyncio
import json
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--addr", default="127.0.0.1", help="listening address")
parser.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--tls", choices=["any", "1.2", "1.3"], default="any")
parser.add_argument("--log", required=True)
parser.add_argument("--auth", help="user:password; AUTH offered after TLS only")
parser.add_argument("--auth-only", choices=["PLAIN", "LOGIN"], help="the one mechanism offered")
parser.add_argument(
    "--auth-refusal",
    help="the reply to every AUTH, whatever the credentials (e.g. '454 4.7.0 Try again later')",
)
parser.add_argument(
    "--requiretls", action="store_true", help="offer REQUIRETLS (RFC 8689) after TLS"
)
args = parser.parse_args()


def log(record):
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.tls == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif args.tls == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def tls_version(server):
    obj = server.transport.get_extra_info("ssl_object") if server.transport else None
    return obj.version() if obj else None


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        log({"event": "EHLO", "tls": tls_version(server)})
        session.host_name = hostname
        if args.requiretls and tls_version(server):
            # aiosmtpd has no REQUIRETLS of its own: the keyword goes before
            # the last line, and MAIL's parameter reaches handle_MAIL.
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        log({"event": "MAIL", "from": address, "options": mail_options, "tls": tls_version(server)})
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.content
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        log({
            "event": "DATA",
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "tls": tls_version(server),
            "auth": session.authenticated,
            "content": content,
        })
        return "250 2.0.0 queued"


class Server(SMTP):
    """aiosmtpd, which refuses MAIL parameters it does not know before any
    hook runs: with --requiretls, REQUIRETLS over TLS is known (the hook
    logs it with the other options)."""

    def _getparams(self, params):
        result = super()._getparams(params)
        if args.requiretls and result is not None and self._tls_protocol is not None:
            result.pop("REQUIRETLS", None)
        return result


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        args.auth_refusal is None
        and isinstance(auth_data, LoginPassword)
        and args.auth is not None
        and f"{auth_data.login.decode()}:{auth_data.password.decode()}" == args.auth
    )
    log({"event": "AUTH", "mechanism": mechanism, "ok": ok, "tls": tls_version(server)})
    if ok:
        return AuthResult(success=True)
    # handled=False makes aiosmtpd send the refusal: `message`, or its
    # "535 5.7.8 Authentication credentials invalid". With its default
    # (handled=True) it sends nothing and the client waits for a reply.
    return AuthResult(success=False, handled=False, message=args.auth_refusal)


async def main():
    kwargs = {"hostname": "peer.test", "enable_SMTPUTF8": True}
    if args.mode == "starttls":
        kwargs["tls_context"] = context()
    if args.auth:
        kwargs["authenticator"] = authenticator
        kwargs["auth_require_tls"] = True
        if args.auth_only:
            kwargs["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m != args.auth_only]
    server_ssl = context() if args.mode == "implicit" else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Server(Handler(), **kwargs), args.addr, args.port, ssl=server_ssl
    )
    async with server:
        await server.serve_forever()


asyncio.run(main())
