<?php
/*
 * wp-config.php written by internal/realapps (caddy-sessions tests) into its
 * cached copy of Debian's /usr/share/wordpress; it replaces Debian's
 * /etc/wordpress/config-<host>.php lookup.
 *
 * The database is the test's private MariaDB, whose 127.0.0.1:port the
 * php-fpm pool passes in REALAPPS_WP_DB_HOST (there is deliberately no
 * default: never the system server or port 3306).
 *
 * Site URL: WordPress redirects to, and builds its links and cookie names
 * from, its configured siteurl. Tests reach it through proxies on arbitrary
 * 127.0.0.1 ports, so home and siteurl follow the request's Host header
 * (and HTTPS/X-Forwarded-Proto for the scheme).
 */

$realapps_db = getenv('REALAPPS_WP_DB_HOST');
if ($realapps_db === false || $realapps_db === '') {
    header('HTTP/1.1 500 Internal Server Error');
    die("realapps: REALAPPS_WP_DB_HOST is not set\n");
}
define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', 'wordpress');
define('DB_HOST', $realapps_db);
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = 'wp_';

@@SALTS@@

if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && strtolower($_SERVER['HTTP_X_FORWARDED_PROTO']) === 'https') {
    $_SERVER['HTTPS'] = 'on';
}
$realapps_host = (isset($_SERVER['HTTP_HOST']) && $_SERVER['HTTP_HOST'] !== '') ? $_SERVER['HTTP_HOST'] : '127.0.0.1';
$realapps_host = preg_replace('/[^A-Za-z0-9.:\[\]\-]/', '', $realapps_host);
$realapps_scheme = (!empty($_SERVER['HTTPS']) && strtolower($_SERVER['HTTPS']) !== 'off') ? 'https' : 'http';
define('WP_HOME', $realapps_scheme . '://' . $realapps_host);
define('WP_SITEURL', $realapps_scheme . '://' . $realapps_host);

define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
define('WP_DEBUG', false);
define('DISABLE_WP_CRON', true);            // no loopback requests to wp-cron.php
define('WP_HTTP_BLOCK_EXTERNAL', true);     // no update/API checks to the outside world
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('DISALLOW_FILE_MODS', true);
define('FS_METHOD', 'direct');

if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
