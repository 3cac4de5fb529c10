<?php

use B24hub\Forwarder\Module;
use B24hub\Forwarder\SpoolTable;
use Bitrix\Main\Application;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\ModuleManager;
use PHPUnit\Framework\TestCase;

final class InstallTest extends TestCase
{
    public function testInstallCreatesSpoolHandlersAgentAndSecret(): void
    {
        Installation::installed();
        $c = Application::getConnection();
        $this->assertTrue(ModuleManager::isModuleInstalled(Module::ID));
        $this->assertTrue($c->isTableExists(SpoolTable::getTableName()));
        foreach (['OnAfterCrmDealAdd', 'OnAfterCrmDealUpdate', 'OnAfterCrmDealDelete'] as $event) {
            $handlers = EventManager::getInstance()->findEventHandlers('crm', $event);
            $this->assertCount(1, $handlers, $event);
            $this->assertSame(Module::ID, $handlers[0]['TO_MODULE_ID']);
            $this->assertSame(['crm', $event], $handlers[0]['TO_METHOD_ARG']);
        }
        $agents = $c->fetchAll('SELECT * FROM b_agent');
        $this->assertCount(1, $agents);
        $this->assertSame(Module::AGENT, $agents[0]['NAME']);
        $this->assertSame(Module::ID, $agents[0]['MODULE_ID']);
        $this->assertMatchesRegularExpression('/^[0-9a-f]{64}$/', Option::get(Module::ID, 'secret'));
    }

    public function testInstallTwiceKeepsOneOfEverythingAndTheSecret(): void
    {
        Installation::installed();
        $secret = Option::get(Module::ID, 'secret');
        Installation::installer()->DoInstall();
        $c = Application::getConnection();
        $this->assertSame(3, (int) $c->fetchValue('SELECT COUNT(*) FROM b_module_to_module'));
        $this->assertSame(1, (int) $c->fetchValue('SELECT COUNT(*) FROM b_agent'));
        $this->assertSame($secret, Option::get(Module::ID, 'secret'));
    }

    public function testUninstallRemovesEverything(): void
    {
        Installation::installed();
        Installation::installer()->DoUninstall();
        $c = Application::getConnection();
        $this->assertFalse(ModuleManager::isModuleInstalled(Module::ID));
        $this->assertFalse($c->isTableExists(SpoolTable::getTableName()));
        $this->assertSame(0, (int) $c->fetchValue('SELECT COUNT(*) FROM b_module_to_module'));
        $this->assertSame(0, (int) $c->fetchValue('SELECT COUNT(*) FROM b_agent'));
        $this->assertSame(0, (int) $c->fetchValue('SELECT COUNT(*) FROM b_option WHERE MODULE_ID = ?', [Module::ID]));
    }
}
