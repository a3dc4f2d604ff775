<?php
// GET /login.php: the form. POST /login.php (username, password): on
// success a new session id (session_regenerate_id(true): the old session is
// deleted) and 302 to /; on failure 200 with the form again, session id
// unchanged.
require __DIR__ . '/common.php';
header('Content-Type: text/html; charset=utf-8');
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $name = isset($_POST['username']) ? (string) $_POST['username'] : '';
    $pass = isset($_POST['password']) ? (string) $_POST['password'] : '';
    if ($name !== '' && isset($APP_USERS[$name]) && hash_equals($APP_USERS[$name], $pass)) {
        session_regenerate_id(true);
        $_SESSION = array('user' => $name, 'login_time' => time());
        app_headers();
        header('Location: /', true, 302);
        exit;
    }
    app_headers();
    login_form('Invalid username or password.');
    exit;
}
app_headers();
login_form('');
