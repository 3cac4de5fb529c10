<?php

use B24hub\Forwarder\Module;
use B24hub\Forwarder\Settings;
use B24hub\Forwarder\Status;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use PHPUnit\Framework\TestCase;

/**
 * The settings page (options.php) as an administrator sees it: delivery
 * status, the form, saving, "send now", and no access without rights.
 */
final class OptionsPageTest extends TestCase
{
    protected function setUp(): void
    {
        if (!defined('B_PROLOG_INCLUDED')) {
            define('B_PROLOG_INCLUDED', true);
        }
        Installation::installed();
        $GLOBALS['APPLICATION'] = new CMain();
        $GLOBALS['APPLICATION']->rights[Module::ID] = 'W';
        $_SERVER['REQUEST_METHOD'] = 'GET';
        $_POST = $_REQUEST = [];
    }

    private function render(): string
    {
        $APPLICATION = $GLOBALS['APPLICATION'];
        ob_start();
        include Installation::MODULES . '/b24hub.forwarder/options.php';
        return ob_get_clean();
    }

    private function post(array $form): string
    {
        $_SERVER['REQUEST_METHOD'] = 'POST';
        $_POST = $_REQUEST = $form;
        return $this->render();
    }

    public function testShowsSpoolSizeLastErrorAndLastSuccess(): void
    {
        Installation::configure('https://hub.example.com/onprem/v1/events', 'crm:OnAfterCrmDealDelete');
        Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [1]);
        Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [2]);
        Status::succeeded(1_800_000_000);
        Status::failed('HTTP 401: bad signature', 1_800_000_060, 3600);
        $html = $this->render();
        $this->assertStringContainsString('Events waiting in the spool</td><td><b>2</b>', $html);
        $this->assertStringContainsString(date('Y-m-d H:i:s', 1_800_000_000), $html);
        $this->assertStringContainsString('HTTP 401: bad signature', $html);
        $this->assertStringContainsString('value="https://hub.example.com/onprem/v1/events"', $html);
        $this->assertStringContainsString('crm:OnAfterCrmDealDelete</textarea>', $html);
        $this->assertStringContainsString('name="sessid"', $html);
    }

    public function testSaveStoresSettingsAndSubscribes(): void
    {
        $html = $this->post(['save' => 'Save', 'sessid' => bitrix_sessid(), 'ingress_url' => 'https://hub.example.com/onprem/v1/events',
            'installation_id' => 'crm-main', 'secret' => '', 'events' => "my.module:OnSomethingHappened", 'batch_size' => '50']);
        $this->assertStringContainsString('Settings saved', $html);
        $this->assertSame('crm-main', (new Settings())->installationId());
        $this->assertSame(50, (new Settings())->batchSize());
        $this->assertCount(1, EventManager::getInstance()->findEventHandlers('my.module', 'OnSomethingHappened'));
        $this->assertCount(0, EventManager::getInstance()->findEventHandlers('crm', 'OnAfterCrmDealUpdate'));
    }

    public function testInvalidSaveShowsTheReasons(): void
    {
        $html = $this->post(['save' => 'Save', 'sessid' => bitrix_sessid(), 'ingress_url' => 'ftp://x', 'installation_id' => 'crm-main',
            'secret' => 'short', 'events' => '', 'batch_size' => '50']);
        $this->assertStringContainsString('ingress URL must be an http(s) URL', $html);
        $this->assertStringContainsString('secret must be at least 32 characters', $html);
        $this->assertSame('', (new Settings())->installationId());
    }

    public function testPostWithoutTheSessionTokenChangesNothing(): void
    {
        $this->post(['save' => 'Save', 'sessid' => 'forged', 'ingress_url' => 'https://evil.example.com/x',
            'installation_id' => 'x', 'secret' => '', 'events' => '', 'batch_size' => '1']);
        $this->assertSame('', (new Settings())->ingressUrl());
        $this->assertCount(1, EventManager::getInstance()->findEventHandlers('crm', 'OnAfterCrmDealUpdate'));
    }

    public function testSendNowRunsADeliveryAndShowsTheOutcome(): void
    {
        Installation::configure('http://127.0.0.1:9/onprem/v1/events', 'crm:OnAfterCrmDealDelete');
        Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [1]);
        Option::set(Module::ID, 'next_attempt_at', (string) (time() + 3600)); // in backoff
        $html = $this->post(['send_now' => 'Send now', 'sessid' => bitrix_sessid()]);
        $this->assertStringContainsString('Delivery run: failed', $html);
        $this->assertStringContainsString('no answer from the ingress', $html);
    }

    public function testNoRightsNoPage(): void
    {
        $GLOBALS['APPLICATION']->rights[Module::ID] = 'R';
        $GLOBALS['USER'] = new CUser(5);
        $html = $this->render();
        $this->assertNotNull($GLOBALS['APPLICATION']->authForm);
        $this->assertStringNotContainsString('Signing secret', $html);
    }
}
