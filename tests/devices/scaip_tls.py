"""A SCAIP device over SIP/TLS for vakt's tests, on Python's own TLS (OpenSSL): it
checks the receiver's certificate against a CA, sends one <mrq> in a SIP MESSAGE,
reads the receiver's 200 OK and its MESSAGE carrying <mrs>, answers that 200 OK, and
prints what it got as JSON.

  python scaip_tls.py --port 5061 --ca ca.pem --ref T1 --cid 4712 --dty 0005 --stc 0009
"""
import argparse
import json
import re
import socket
import ssl


def read_message(conn, buf):
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head).group(1))
    while len(rest) < length:
        rest += conn.recv(4096)
    return head.decode(), rest[:length].decode(), rest[length:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--cid", required=True)
    p.add_argument("--dty", default="0005")
    p.add_argument("--stc", default="0009")
    a = p.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    raw = socket.create_connection((a.host, a.port), timeout=10)
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    local = "%s:%d" % conn.getsockname()[:2]
    body = ('<?xml version="1.0" encoding="UTF-8"?><mrq><ref>%s</ref><ver>01.00</ver><mty>ME</mty>'
            "<cid>%s</cid><dty>%s</dty><stc>%s</stc></mrq>" % (a.ref, a.cid, a.dty, a.stc)).encode()
    request = ("MESSAGE sips:vakt@localhost:%d SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bKtls%s\r\n"
               "From: <sips:%s@%s>;tag=t%s\r\nTo: <sips:vakt@localhost:%d>\r\nCall-ID: tls-%s\r\nCSeq: 1 MESSAGE\r\n"
               "Max-Forwards: 70\r\nContent-Type: application/scaip+xml\r\nContent-Length: %d\r\n\r\n"
               % (a.port, local, a.ref, a.cid, local, a.ref, a.port, a.ref, len(body))).encode() + body
    conn.sendall(request)
    buf = b""
    response, _, buf = read_message(conn, buf)
    message, mrs, buf = read_message(conn, buf)
    via = re.search(r"(?im)^via:\s*(.*)$", message).group(1).strip()
    cseq = re.search(r"(?im)^cseq:\s*(.*)$", message).group(1).strip()
    call_id = re.search(r"(?im)^call-id:\s*(.*)$", message).group(1).strip()
    frm = re.search(r"(?im)^from:\s*(.*)$", message).group(1).strip()
    to = re.search(r"(?im)^to:\s*(.*)$", message).group(1).strip()
    conn.sendall(("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n"
                  % (via, frm, to, call_id, cseq)).encode())
    print(json.dumps({
        "response": response.split("\r\n", 1)[0],
        "message": message.split("\r\n", 1)[0],
        "via": via,
        "ref": re.search(r"<ref>([^<]*)</ref>", mrs).group(1),
        "snu": int(re.search(r"<snu>(\d+)</snu>", mrs).group(1)),
        "tls": conn.version(),
    }))
    conn.close()


if __name__ == "__main__":
    main()
