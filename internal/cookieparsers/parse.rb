# Cookies as a Rack application reads them, for internal/cookieparsers:
# Rack::Request#cookies (Rack::Utils.parse_cookies_header), Debian's ruby-rack.
#
# Reads JSON lines on stdin, each a JSON string whose code points are the raw
# Cookie header's bytes (latin-1), puts the bytes in the env as HTTP_COOKIE
# (a binary string, as Rack servers do) and writes one JSON object per line:
# name -> value. Strings in the output carry Ruby's bytes as latin-1 code
# points; a cookie without '=' has the value nil (JSON null).
require 'json'
require 'rack'

def l1(s)
  s.nil? ? nil : s.b.force_encoding(Encoding::ISO_8859_1).encode(Encoding::UTF_8)
end

$stdout.binmode
$stdin.each_line do |line|
  line = line.chomp
  next if line.empty?
  header = JSON.parse(line)
  unless header.is_a?(String)
    warn 'parse.rb: input line is not a JSON string'
    exit 1
  end
  raw = header.encode(Encoding::ISO_8859_1).b
  env = {
    'REQUEST_METHOD' => 'GET',
    'SCRIPT_NAME' => '',
    'PATH_INFO' => '/',
    'QUERY_STRING' => '',
    'SERVER_NAME' => 'localhost',
    'SERVER_PORT' => '80',
    'rack.url_scheme' => 'http',
    'HTTP_COOKIE' => raw,
  }
  cookies = Rack::Request.new(env).cookies
  res = {}
  cookies.each { |k, v| res[l1(k)] = v.is_a?(String) ? l1(v) : v }
  $stdout.write(JSON.generate(res), "\n")
end
$stdout.flush
