<?php
// $_COOKIE as PHP itself fills it, for internal/cookieparsers.
//
// Two modes, one file:
//
//  - Under php-cgi (PHP_SAPI "cgi-fcgi"), run as a CGI script with
//    HTTP_COOKIE set: prints $_COOKIE as one JSON object. The SAPI built
//    $_COOKIE from HTTP_COOKIE before this script ran, with the ini of the
//    CGI SAPI (max_input_vars, ...), exactly as for a real request.
//
//  - Under the CLI: `php parse.php /usr/bin/php-cgi [parallelism]` reads
//    JSON lines on stdin (each a JSON string whose code points are the raw
//    header's bytes, i.e. latin-1), runs php-cgi on this same file once per
//    header (several at a time), and writes one JSON line per input, in input
//    order.
//
// Output strings (keys and values, also inside arrays) carry PHP's byte
// strings as latin-1 code points (byte 0xff -> U+00FF), so any byte survives
// JSON. The top level is always an object.

function to_l1(string $s): string {
    return iconv('ISO-8859-1', 'UTF-8', $s);
}

function l1_value($v) {
    if (is_array($v)) {
        $out = [];
        foreach ($v as $k => $x) {
            $out[is_string($k) ? to_l1($k) : $k] = l1_value($x);
        }
        return $out;
    }
    return is_string($v) ? to_l1($v) : $v;
}

if (PHP_SAPI === 'cgi-fcgi' || PHP_SAPI === 'cgi') {
    $json = json_encode((object) l1_value($_COOKIE), JSON_UNESCAPED_SLASHES);
    if ($json === false) {
        header('Status: 500');
        echo 'json_encode: ', json_last_error_msg();
        exit(1);
    }
    echo $json;
    exit(0);
}

if (PHP_SAPI !== 'cli') {
    fwrite(STDERR, "parse.php: unsupported SAPI " . PHP_SAPI . "\n");
    exit(2);
}

$cgi = $argv[1] ?? '/usr/bin/php-cgi';
$par = max(1, (int) ($argv[2] ?? 4));
if (!is_executable($cgi)) {
    fwrite(STDERR, "parse.php: php-cgi not executable: $cgi (install Debian's php-cgi)\n");
    exit(1);
}
$script = realpath(__FILE__);

$headers = [];
$n = 0;
while (($line = fgets(STDIN)) !== false) {
    $n++;
    $line = rtrim($line, "\r\n");
    if ($line === '') {
        continue;
    }
    $h = json_decode($line);
    if (!is_string($h)) {
        fwrite(STDERR, "parse.php: line $n: not a JSON string\n");
        exit(1);
    }
    $raw = @iconv('UTF-8', 'ISO-8859-1', $h);
    if ($raw === false) {
        fwrite(STDERR, "parse.php: line $n: code point above U+00FF (header bytes must be sent as latin-1)\n");
        exit(1);
    }
    if (strpos($raw, "\0") !== false) {
        fwrite(STDERR, "parse.php: line $n: NUL byte cannot be passed to php-cgi through HTTP_COOKIE\n");
        exit(1);
    }
    $headers[] = $raw;
}

$results = [];
$queue = array_keys($headers);
$active = []; // index => ['proc', 'pipes', 'out', 'err', 'open']

function fail(string $msg) {
    fwrite(STDERR, "parse.php: $msg\n");
    exit(1);
}

while ($queue || $active) {
    while ($queue && count($active) < $par) {
        $i = array_shift($queue);
        $env = [
            'GATEWAY_INTERFACE' => 'CGI/1.1',
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'REQUEST_METHOD' => 'GET',
            'QUERY_STRING' => '',
            'REQUEST_URI' => '/parse.php',
            'SCRIPT_NAME' => '/parse.php',
            'SCRIPT_FILENAME' => $script,
            'REDIRECT_STATUS' => '200',
            'HTTP_COOKIE' => $headers[$i],
        ];
        $proc = proc_open([$cgi], [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        if (!is_resource($proc)) {
            fail("cannot start $cgi");
        }
        stream_set_blocking($pipes[1], false);
        stream_set_blocking($pipes[2], false);
        $active[$i] = ['proc' => $proc, 'pipes' => [1 => $pipes[1], 2 => $pipes[2]], 'out' => '', 'err' => ''];
    }
    $read = [];
    foreach ($active as $a) {
        foreach ($a['pipes'] as $p) {
            $read[] = $p;
        }
    }
    $w = null;
    $e = null;
    if ($read && stream_select($read, $w, $e, 10) === false) {
        fail('stream_select failed');
    }
    foreach ($read as $r) {
        foreach ($active as $i => $a) {
            foreach ($a['pipes'] as $fd => $p) {
                if ($p !== $r) {
                    continue;
                }
                $chunk = fread($p, 65536);
                if ($chunk !== false && $chunk !== '') {
                    $active[$i][$fd === 1 ? 'out' : 'err'] .= $chunk;
                } elseif (feof($p)) {
                    fclose($p);
                    unset($active[$i]['pipes'][$fd]);
                }
            }
        }
    }
    foreach ($active as $i => $a) {
        if ($a['pipes']) {
            continue;
        }
        $code = proc_close($a['proc']);
        unset($active[$i]);
        $parts = preg_split("/\r?\n\r?\n/", $a['out'], 2);
        if ($code !== 0 || count($parts) !== 2) {
            fail("php-cgi failed on header " . ($i + 1) . " (exit $code): " . $a['err'] . $a['out']);
        }
        $results[$i] = $parts[1];
    }
}

ksort($results);
foreach ($results as $r) {
    echo $r, "\n";
}
