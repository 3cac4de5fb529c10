<?php

use B24hub\Forwarder\Serializer;
use B24hub\Forwarder\Spool;
use B24hub\Forwarder\SpoolTable;
use B24hub\Forwarder\Status;
use Bitrix\Main\Application;
use Bitrix\Main\Event;
use Bitrix\Main\Type\DateTime;
use PHPUnit\Framework\TestCase;

final class CaptureTest extends TestCase
{
    protected function setUp(): void
    {
        Installation::installed();
        // An address nothing listens on: capture must not care.
        Installation::configure('http://127.0.0.1:9/onprem/v1/events', "crm:OnAfterCrmDealUpdate\ncrm:OnAfterCrmDealDelete\nmy.module:OnSomethingHappened\nmain:OnBeforeUserUpdate");
    }

    /** @return list<array<string, mixed>> */
    private function spooled(): array
    {
        return array_map(static fn($r) => json_decode($r['PAYLOAD'], true, 512, JSON_THROW_ON_ERROR), Spool::head(100));
    }

    public function testCompatibleEventIsSpooledWithFieldsUserAndEntity(): void
    {
        $fields = ['ID' => 42, 'TITLE' => 'Big deal', 'OPPORTUNITY' => 100.0, 'CLOSEDATE' => new DateTime('01.02.2027 10:00:00')];
        $before = $fields;
        Installation::fireCompatible('crm', 'OnAfterCrmDealUpdate', [&$fields]);
        $this->assertEquals($before, $fields, 'the handler changed the by-reference fields');
        $got = $this->spooled();
        $this->assertCount(1, $got);
        $e = $got[0];
        $this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $e['id']);
        $this->assertSame('crm', $e['module']);
        $this->assertSame('OnAfterCrmDealUpdate', $e['event']);
        $this->assertSame(7, $e['user_id']);
        $this->assertSame('42', $e['entity_id']);
        $this->assertSame('Big deal', $e['params'][0]['TITLE']);
        $this->assertSame(100.0, $e['params'][0]['OPPORTUNITY']);
        $this->assertStringStartsWith('2027-02-01T10:00:00', $e['params'][0]['CLOSEDATE']);
        $this->assertNotFalse(\DateTimeImmutable::createFromFormat('Y-m-d\TH:i:s.vP', $e['time']));
        $this->assertSame(Spool::head(1)[0]['EVENT_ID'], $e['id']);
    }

    public function testScalarArgumentIsTheEntity(): void
    {
        Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [43]);
        $this->assertSame('43', $this->spooled()[0]['entity_id']);
        $this->assertSame([43], $this->spooled()[0]['params']);
    }

    public function testCustomD7EventIsSpooledWithItsParameters(): void
    {
        (new Event('my.module', 'OnSomethingHappened', ['id' => 'order-9', 'data' => ['total' => 5]]))->send();
        $e = $this->spooled()[0];
        $this->assertSame('my.module', $e['module']);
        $this->assertSame('OnSomethingHappened', $e['event']);
        $this->assertSame([['id' => 'order-9', 'data' => ['total' => 5]]], $e['params']);
        $this->assertSame('order-9', $e['entity_id']);
    }

    public function testSecretsAreRedacted(): void
    {
        $fields = ['ID' => 5, 'LOGIN' => 'anna', 'PASSWORD' => 'hunter2', 'CONFIRM_PASSWORD' => 'hunter2', 'CHECKWORD' => 'x', 'UF_API_TOKEN' => 't'];
        Installation::fireCompatible('main', 'OnBeforeUserUpdate', [&$fields]);
        $p = $this->spooled()[0]['params'][0];
        $this->assertSame('anna', $p['LOGIN']);
        foreach (['PASSWORD', 'CONFIRM_PASSWORD', 'CHECKWORD', 'UF_API_TOKEN'] as $k) {
            $this->assertSame('[redacted]', $p[$k], $k);
        }
        $this->assertSame('hunter2', $fields['PASSWORD'], 'the caller\'s array was changed');
    }

    public function testEventsKeepCaptureOrder(): void
    {
        for ($i = 1; $i <= 5; $i++) {
            Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [$i]);
        }
        $this->assertSame(['1', '2', '3', '4', '5'], array_column($this->spooled(), 'entity_id'));
    }

    public function testUnsubscribedEventIsNotCaptured(): void
    {
        Installation::fireCompatible('crm', 'OnAfterCrmDealAdd', [['ID' => 1]]);
        $this->assertSame(0, Spool::size());
    }

    public function testHugeParamsAreDroppedButTheEventKept(): void
    {
        $fields = ['ID' => 8, 'COMMENTS' => str_repeat('x', Serializer::MAX_PAYLOAD)];
        Installation::fireCompatible('crm', 'OnAfterCrmDealUpdate', [&$fields]);
        $e = $this->spooled()[0];
        $this->assertTrue($e['truncated']);
        $this->assertSame([], $e['params']);
        $this->assertSame('8', $e['entity_id']);
    }

    public function testSpoolFailureDoesNotBreakTheRequest(): void
    {
        Application::getConnection()->dropTable(SpoolTable::getTableName());
        $fields = ['ID' => 1];
        Installation::fireCompatible('crm', 'OnAfterCrmDealUpdate', [&$fields]);
        $this->assertStringContainsString('crm:OnAfterCrmDealUpdate', Status::lastCaptureError());
    }

    public function testNoUserIsNull(): void
    {
        $GLOBALS['USER'] = new CUser(null);
        Installation::fireCompatible('crm', 'OnAfterCrmDealDelete', [1]);
        $this->assertNull($this->spooled()[0]['user_id']);
    }
}
