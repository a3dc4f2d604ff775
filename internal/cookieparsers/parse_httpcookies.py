"""Cookies as Python's http.cookies.SimpleCookie reads them, for internal/cookieparsers.

Reads JSON lines on stdin, each a JSON string whose code points are the raw
Cookie header's bytes (latin-1, as WSGI servers and Tornado hand headers to
applications), and writes one JSON object per line: {name: morsel.value} after
SimpleCookie().load(header). SimpleCookie stops silently at the first part it
cannot parse and may raise CookieError on some input; what it had stored by
then is what an application sees (an exception yields {}).

Run with Debian's /usr/bin/python3.
"""

import http.cookies
import json
import sys


def parse(header):
    c = http.cookies.SimpleCookie()
    try:
        c.load(header)
    except http.cookies.CookieError:
        # load() raised part way: frameworks catch this and see no cookies.
        return {}
    return {k: m.value for k, m in c.items()}


def main():
    out = sys.stdout
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if not line:
            continue
        header = json.loads(line)
        if not isinstance(header, str):
            raise SystemExit("parse_httpcookies.py: input line is not a JSON string")
        out.write(json.dumps(parse(header)) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
