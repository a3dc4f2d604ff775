<?php
/*
 * Shared by every page of the realapps PHP session test app (see
 * internal/realapps). Every request starts a session, so even an anonymous
 * first visit gets a PHPSESSID cookie.
 *
 * Session settings are the hardened ones a careful app would use:
 * strict mode (an unknown or destroyed session id is never adopted: PHP
 * answers with a fresh id instead), cookies only, HttpOnly, SameSite=Lax,
 * path "/", no expiry (a browser-session cookie).
 */
ini_set('session.use_strict_mode', '1');
ini_set('session.use_only_cookies', '1');
ini_set('session.use_trans_sid', '0');
session_name('PHPSESSID');
session_set_cookie_params(array(
    'lifetime' => 0,
    'path' => '/',
    'httponly' => true,
    'samesite' => 'Lax',
));
session_start();

// The users of the app: login => password.
$APP_USERS = array('alice' => 'alice', 'bob' => 'bob', 'carol' => 'carol');

/** The logged-in user or '' for anonymous. */
function app_user()
{
    return isset($_SESSION['user']) ? (string) $_SESSION['user'] : '';
}

/**
 * Headers telling tests who the app thinks the request is: X-App-User
 * (absent when anonymous) and X-App-Session (the current session id).
 * Call after any session id change and before output.
 */
function app_headers()
{
    $u = app_user();
    if ($u !== '') {
        header('X-App-User: ' . $u);
    }
    header('X-App-Session: ' . session_id());
}

function h($s)
{
    return htmlspecialchars($s, ENT_QUOTES, 'UTF-8');
}

function login_form($error)
{
    echo "<!DOCTYPE html>\n<html><head><title>Log in</title></head><body>\n";
    if ($error !== '') {
        echo '<p class="error">' . h($error) . "</p>\n";
    }
    echo "<form method=\"post\" action=\"/login.php\">\n";
    echo "<label>User <input name=\"username\"></label>\n";
    echo "<label>Password <input type=\"password\" name=\"password\"></label>\n";
    echo "<button type=\"submit\">Log in</button>\n</form>\n</body></html>\n";
}
