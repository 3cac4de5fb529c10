<?php
// Loads the stand-in kernel. Usage:
//   require 'kernel.php';
//   \Bitrix\Main\Application::boot('/path/to.sqlite', '/path/to/modules');
require_once __DIR__ . '/Main.php';
require_once __DIR__ . '/Support.php';
require_once __DIR__ . '/ORM.php';
require_once __DIR__ . '/Legacy.php';
if (!defined('LANGUAGE_ID')) {
    define('LANGUAGE_ID', 'en');
}
