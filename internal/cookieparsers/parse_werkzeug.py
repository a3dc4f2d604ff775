"""Cookies as a Flask/Werkzeug application reads them, for internal/cookieparsers.

Reads JSON lines on stdin, each a JSON string whose code points are the raw
Cookie header's bytes (latin-1, as PEP 3333 puts headers in the WSGI environ),
and writes one JSON object per line: name -> request.cookies.get(name), i.e.
the first value per name of werkzeug's parse_cookie.

Run with Debian's /usr/bin/python3 and python3-werkzeug.
"""

import json
import sys

from werkzeug.wrappers import Request


def environ(header):
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "HTTP_COOKIE": header,
    }


def main():
    out = sys.stdout
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if not line:
            continue
        header = json.loads(line)
        if not isinstance(header, str):
            raise SystemExit("parse_werkzeug.py: input line is not a JSON string")
        cookies = Request(environ(header)).cookies
        # MultiDict: [] and .get() return the first value for a key.
        res = {k: cookies.get(k) for k in cookies.keys()}
        out.write(json.dumps(res) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
