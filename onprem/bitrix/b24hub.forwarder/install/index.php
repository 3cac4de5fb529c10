<?php

use B24hub\Forwarder\Module;
use B24hub\Forwarder\Settings;
use B24hub\Forwarder\SpoolTable;
use B24hub\Forwarder\Subscriptions;
use Bitrix\Main\Application;
use Bitrix\Main\Config\Option;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Bitrix\Main\ModuleManager;

Loc::loadMessages(__FILE__);

/**
 * Installer of b24hub.forwarder. Bitrix finds it by the module folder name,
 * with the dot replaced by an underscore.
 */
class b24hub_forwarder extends CModule
{
    public $MODULE_ID = 'b24hub.forwarder';
    public $MODULE_VERSION;
    public $MODULE_VERSION_DATE;
    public $MODULE_NAME;
    public $MODULE_DESCRIPTION;
    public $PARTNER_NAME = 'b24hub';
    public $PARTNER_URI = 'https://github.com/b24hub/b24hub';

    public function __construct()
    {
        $arModuleVersion = [];
        include __DIR__ . '/version.php';
        $this->MODULE_VERSION = $arModuleVersion['VERSION'];
        $this->MODULE_VERSION_DATE = $arModuleVersion['VERSION_DATE'];
        $this->MODULE_NAME = Loc::getMessage('B24HUB_FORWARDER_MODULE_NAME') ?: 'b24hub forwarder';
        $this->MODULE_DESCRIPTION = Loc::getMessage('B24HUB_FORWARDER_MODULE_DESCRIPTION') ?: '';
    }

    /**
     * Registers the module, creates the spool table, subscribes the default
     * events (deals), generates a secret when none is set, and adds the
     * shipping agent. Running it again changes nothing already in place.
     */
    public function DoInstall()
    {
        if (PHP_VERSION_ID < 80100) {
            throw new \RuntimeException(Loc::getMessage('B24HUB_FORWARDER_PHP_VERSION') ?: 'b24hub.forwarder needs PHP 8.1 or later');
        }
        ModuleManager::registerModule($this->MODULE_ID);
        Loader::includeModule($this->MODULE_ID);
        $this->InstallDB();
        $this->InstallEvents();
        $this->InstallAgents();
        return true;
    }

    /**
     * Removes the handlers and the agent, drops the spool (events still in
     * it are lost, so the settings page shows the count before uninstall),
     * deletes the settings and unregisters the module.
     */
    public function DoUninstall()
    {
        Loader::includeModule($this->MODULE_ID);
        $this->UnInstallAgents();
        $this->UnInstallEvents();
        $this->UnInstallDB();
        ModuleManager::unRegisterModule($this->MODULE_ID);
        return true;
    }

    public function InstallDB()
    {
        $conn = Application::getConnection();
        $entity = SpoolTable::getEntity();
        if (!$conn->isTableExists($entity->getDBTableName())) {
            $entity->createDbTable();
        }
        if (Option::get(Module::ID, 'secret', '') === '') {
            Option::set(Module::ID, 'secret', Settings::newSecret());
        }
        return true;
    }

    public function UnInstallDB()
    {
        $conn = Application::getConnection();
        $table = SpoolTable::getEntity()->getDBTableName();
        if ($conn->isTableExists($table)) {
            $conn->dropTable($table);
        }
        Option::delete(Module::ID);
        return true;
    }

    public function InstallEvents()
    {
        Subscriptions::sync((new Settings())->events());
        return true;
    }

    public function UnInstallEvents()
    {
        Subscriptions::clear();
        return true;
    }

    public function InstallAgents()
    {
        \CAgent::RemoveAgent(Module::AGENT, Module::ID);
        \CAgent::AddAgent(Module::AGENT, Module::ID, 'N', Module::AGENT_INTERVAL);
        return true;
    }

    public function UnInstallAgents()
    {
        \CAgent::RemoveModuleAgents(Module::ID);
        return true;
    }
}
