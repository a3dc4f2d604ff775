// Cookies as an Express application reads them, for internal/cookieparsers:
// require('cookie').parse(header) from the npm package pinned in node/.
//
// Reads JSON lines on stdin, each a JSON string whose code points are the raw
// Cookie header's bytes (latin-1, as Node's http module decodes header
// values), and writes one JSON object per line: name -> value.
'use strict';

const path = require('path');
const readline = require('readline');

let cookie;
try {
  cookie = require(path.join(__dirname, 'node', 'node_modules', 'cookie'));
} catch (e) {
  process.stderr.write('parse.js: npm package cookie not installed in ' +
    path.join(__dirname, 'node') + ' (run bash scripts/install-parsers.sh): ' + e.message + '\n');
  process.exit(1);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
rl.on('line', (line) => {
  if (line === '') return;
  const header = JSON.parse(line);
  if (typeof header !== 'string') {
    process.stderr.write('parse.js: input line is not a JSON string\n');
    process.exit(1);
  }
  const parsed = cookie.parse(header);
  // Own enumerable properties only, as an application iterating req.cookies.
  const res = {};
  for (const k of Object.keys(parsed)) res[k] = parsed[k];
  out.push(JSON.stringify(res));
});
rl.on('close', () => {
  process.stdout.write(out.length ? out.join('\n') + '\n' : '');
});
