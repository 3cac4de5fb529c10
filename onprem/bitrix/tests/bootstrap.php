<?php
// PHPUnit bootstrap: the stand-in kernel, plus a helper that gives each
// test a fresh installation with the module installed.

require_once __DIR__ . '/kernel/kernel.php';
// The module's autoloader, so test files can name its classes before a
// test installs it (include.php only registers the autoloader).
require_once __DIR__ . '/../b24hub.forwarder/include.php';

use Bitrix\Main\Application;

/** Test helper: a fresh installation in a temporary SQLite file. */
final class Installation
{
    public const MODULES = __DIR__ . '/..';

    /** Boots an empty installation and returns its database path. */
    public static function boot(): string
    {
        $db = tempnam(sys_get_temp_dir(), 'bx-forwarder-test-');
        register_shutdown_function(static fn() => @unlink($db));
        Application::boot($db, self::MODULES);
        $GLOBALS['USER'] = new CUser(7);
        return $db;
    }

    /** Boots and installs the module, as the admin's "Install" button does. */
    public static function installed(): string
    {
        $db = self::boot();
        self::installer()->DoInstall();
        return $db;
    }

    public static function installer(): b24hub_forwarder
    {
        require_once self::MODULES . '/b24hub.forwarder/install/index.php';
        return new b24hub_forwarder();
    }

    /** Configures the module through the settings form. */
    public static function configure(string $url, string $events = "crm:OnAfterCrmDealAdd\ncrm:OnAfterCrmDealUpdate\ncrm:OnAfterCrmDealDelete", int $batch = 100): void
    {
        $errors = (new \B24hub\Forwarder\Settings())->save([
            'ingress_url' => $url,
            'installation_id' => 'crm-main',
            'secret' => str_repeat('s', 40),
            'events' => $events,
            'batch_size' => (string) $batch,
        ]);
        if ($errors) {
            throw new \RuntimeException(implode('; ', $errors));
        }
    }

    /** Raises an old-style event the way the CRM module does. */
    public static function fireCompatible(string $module, string $event, array $args): void
    {
        foreach (GetModuleEvents($module, $event, true) as $handler) {
            ExecuteModuleEventEx($handler, $args);
        }
    }
}
