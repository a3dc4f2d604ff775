<?php
/*
 * Installs the WordPress site for internal/realapps; run once per cache
 * build by the PHP CLI:  php install.php <wordpress root>
 * Environment: REALAPPS_WP_DB_HOST (the private MariaDB's 127.0.0.1:port,
 * root without password), REALAPPS_WP_USERS (JSON: login -> {password, role}).
 */
error_reporting(E_ALL);
ini_set('display_errors', 'stderr');

$root = $argv[1];
$dbhost = getenv('REALAPPS_WP_DB_HOST');
$users = json_decode(getenv('REALAPPS_WP_USERS'), true);
if (!$dbhost || !is_array($users)) {
    fwrite(STDERR, "install.php: REALAPPS_WP_DB_HOST / REALAPPS_WP_USERS missing\n");
    exit(2);
}

// Database and its user, as an administrator would create them.
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
list($h, $p) = explode(':', $dbhost);
$db = new mysqli($h, 'root', '', '', (int) $p);
$db->query("CREATE DATABASE wordpress CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
$db->query("CREATE USER 'wordpress'@'127.0.0.1' IDENTIFIED BY 'wordpress'");
$db->query("GRANT ALL PRIVILEGES ON wordpress.* TO 'wordpress'@'127.0.0.1'");
$db->close();
mysqli_report(MYSQLI_REPORT_OFF);

// What the web installer (wp-admin/install.php) does, without a browser.
$_SERVER['HTTP_HOST'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/wp-admin/install.php';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['SERVER_PORT'] = '80';
define('WP_INSTALLING', true);
// Pluggable: no mail from the installer.
function wp_mail() { return true; }
function wp_new_blog_notification() {}
require $root . '/wp-load.php';
// No HTTP from the installer either (pretty-permalink probes).
add_filter('pre_http_request', function () { return new WP_Error('realapps', 'no HTTP during install'); });
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

$result = wp_install('caddy-sessions test site', 'admin', 'admin@example.test', false, '', wp_generate_password(24));
if (is_wp_error($result) || empty($result['user_id'])) {
    fwrite(STDERR, "install.php: wp_install failed\n");
    var_dump($result);
    exit(1);
}
foreach ($users as $login => $u) {
    $id = wp_insert_user(array(
        'user_login' => $login,
        'user_pass' => $u['password'],
        'user_email' => $login . '@example.test',
        'display_name' => $login,
        'role' => $u['role'],
    ));
    if (is_wp_error($id)) {
        fwrite(STDERR, "install.php: creating $login: " . $id->get_error_message() . "\n");
        exit(1);
    }
    // No "welcome" admin pointers or admin-email verification interstitials.
    update_user_meta($id, 'dismissed_wp_pointers', 'theme_editor_notice');
}
update_option('admin_email_lifespan', time() + 20 * YEAR_IN_SECONDS);
update_option('blog_public', '0');
echo "installed WordPress " . get_bloginfo('version') . " with users " . implode(', ', array_keys($users)) . "\n";
