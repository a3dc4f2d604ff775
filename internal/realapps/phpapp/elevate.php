<?php
// GET /elevate.php: a privilege change in the middle of a session. Logged
// in: session_regenerate_id(true) (new id, old session deleted), the
// session is marked elevated, 200. Anonymous: 403, id unchanged.
require __DIR__ . '/common.php';
header('Content-Type: text/plain; charset=utf-8');
if (app_user() === '') {
    app_headers();
    http_response_code(403);
    echo "not logged in\n";
    exit;
}
session_regenerate_id(true);
$_SESSION['elevated'] = true;
app_headers();
echo 'elevated ' . app_user() . "\n";
