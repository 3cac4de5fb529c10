<?php

use B24hub\Forwarder\Settings;
use B24hub\Forwarder\Subscriptions;
use Bitrix\Main\EventManager;
use PHPUnit\Framework\TestCase;

final class SettingsTest extends TestCase
{
    protected function setUp(): void
    {
        Installation::installed();
    }

    public function testSaveRegistersNewEventsAndUnregistersRemovedOnes(): void
    {
        Installation::configure('https://hub.example.com/onprem/v1/events', "crm:OnAfterCrmDealUpdate\n# comment\n\nmy.module:OnSomethingHappened\n");
        $em = EventManager::getInstance();
        $this->assertCount(1, $em->findEventHandlers('crm', 'OnAfterCrmDealUpdate'));
        $this->assertCount(0, $em->findEventHandlers('crm', 'OnAfterCrmDealAdd'));
        $this->assertCount(1, $em->findEventHandlers('my.module', 'OnSomethingHappened'));
        $this->assertSame(['crm:OnAfterCrmDealUpdate', 'my.module:OnSomethingHappened'], array_keys(Subscriptions::registered()));
        $this->assertSame([['crm', 'OnAfterCrmDealUpdate'], ['my.module', 'OnSomethingHappened']], (new Settings())->events());
    }

    public function testEmptySecretKeepsTheStoredOne(): void
    {
        $before = (new Settings())->secret();
        $errors = (new Settings())->save(['ingress_url' => 'https://hub.example.com/x', 'installation_id' => 'a', 'secret' => '', 'events' => '', 'batch_size' => '10']);
        $this->assertSame([], $errors);
        $this->assertSame($before, (new Settings())->secret());
    }

    /** @dataProvider invalidForms */
    public function testInvalidFormIsRefusedAndNothingStored(array $form, string $want): void
    {
        $before = (new Settings())->ingressUrl();
        $errors = (new Settings())->save($form + ['ingress_url' => 'https://hub.example.com/x', 'installation_id' => 'a', 'secret' => '', 'events' => '', 'batch_size' => '10']);
        $this->assertNotEmpty($errors);
        $this->assertStringContainsString($want, implode('; ', $errors));
        $this->assertSame($before, (new Settings())->ingressUrl());
    }

    public static function invalidForms(): array
    {
        return [
            'ftp url' => [['ingress_url' => 'ftp://hub'], 'http(s) URL'],
            'bad id' => [['installation_id' => 'a b'], 'installation id'],
            'short secret' => [['secret' => 'short'], 'at least 32'],
            'bad event line' => [['events' => "crm:OnAfterCrmDealUpdate\nOnAfterCrmDealAdd"], 'line 2'],
            'batch too large' => [['batch_size' => '1000'], 'batch size'],
        ];
    }

    public function testIncompleteSaysWhatIsMissing(): void
    {
        $this->assertSame('ingress URL not set', (new Settings())->incomplete());
        Installation::configure('https://hub.example.com/onprem/v1/events');
        $this->assertNull((new Settings())->incomplete());
    }
}
