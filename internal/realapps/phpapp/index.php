<?php
// GET /: who is logged in. 200 either way.
require __DIR__ . '/common.php';
app_headers();
header('Content-Type: text/html; charset=utf-8');
$u = app_user();
echo "<!DOCTYPE html>\n<html><head><title>PHP session app</title></head><body>\n";
if ($u !== '') {
    echo '<p id="status">logged in as ' . h($u) . "</p>\n";
    if (!empty($_SESSION['elevated'])) {
        echo "<p id=\"elevated\">elevated</p>\n";
    }
    echo "<p><a href=\"/elevate.php\">elevate</a> <a href=\"/logout.php\">log out</a></p>\n";
} else {
    echo "<p id=\"status\">anonymous</p>\n<p><a href=\"/login.php\">log in</a></p>\n";
}
echo "</body></html>\n";
