<?php
// GET /logout.php: destroys the session, expires the cookie, 302 to /.
require __DIR__ . '/common.php';
$_SESSION = array();
session_destroy();
$p = session_get_cookie_params();
setcookie(session_name(), '', array(
    'expires' => 1,
    'path' => $p['path'],
    'domain' => $p['domain'],
    'secure' => $p['secure'],
    'httponly' => $p['httponly'],
    'samesite' => $p['samesite'],
));
header('Location: /', true, 302);
