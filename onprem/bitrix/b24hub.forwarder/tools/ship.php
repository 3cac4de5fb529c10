<?php
// Cron entry point, for installations that run agents from cron or want
// shipping independent of page hits:
//
//   * * * * * php -f /path/to/site/local/modules/b24hub.forwarder/tools/ship.php /path/to/site
//
// It loads the Bitrix kernel without a user session, ships the spool and
// prints the result. The agent and this script share a lock, so running
// both never sends an event twice at once.

if (PHP_SAPI !== 'cli') {
    http_response_code(404);
    exit;
}
$root = $argv[1] ?? ($_SERVER['DOCUMENT_ROOT'] ?? '');
if ($root === '' || !is_file($root . '/bitrix/modules/main/include/prolog_before.php')) {
    fwrite(STDERR, "usage: php ship.php /path/to/site (the folder holding bitrix/)\n");
    exit(2);
}
$_SERVER['DOCUMENT_ROOT'] = $root;
define('NO_KEEP_STATISTIC', true);
define('NOT_CHECK_PERMISSIONS', true);
define('NO_AGENT_CHECK', true);
define('BX_CRONTAB', true);
require $root . '/bitrix/modules/main/include/prolog_before.php';

if (!\Bitrix\Main\Loader::includeModule('b24hub.forwarder')) {
    fwrite(STDERR, "b24hub.forwarder is not installed\n");
    exit(1);
}
$result = \B24hub\Forwarder\Shipper::fromSettings()->run();
$waiting = \B24hub\Forwarder\Spool::size();
echo $result, ': ', $waiting, " events waiting\n";
if ($result === 'failed' || $result === 'unconfigured') {
    fwrite(STDERR, \B24hub\Forwarder\Status::lastError() . "\n");
    exit(1);
}
